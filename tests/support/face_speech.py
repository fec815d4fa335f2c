"""eSpeak NG speech with its phoneme events (IPA, start times), as the tts service sends them."""

from __future__ import annotations

import numpy as np

from services.face.engine import Phoneme
from tests.support.speech import espeak_with_timings


def espeak_with_phonemes(
    text: str, voice: str = "en-us", words_per_minute: int = 165
) -> tuple[np.ndarray, list[Phoneme]]:
    """Speaks ``text``: mono float32 at 22.05 kHz and its phonemes (IPA) with times."""
    samples, timings = espeak_with_timings(text, voice, words_per_minute)
    return samples, [Phoneme(p.symbol, p.start_s, p.end_s) for p in timings if p.symbol]
