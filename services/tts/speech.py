"""What the tts engine produces: the events of a stream, built from what backends render.

Times inside ``Rendered`` are seconds from the start of the rendered piece; times in the
stream events are seconds (or sample frames) from the start of the turn.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from services.tts.backends.base import Rendered, Word
from solami.speech import Phoneme

# Sample rate of SpeechTokenizer's decoder, the native rate of Vocode.
VOCODE_RATE_HZ = 16_000


@dataclasses.dataclass(frozen=True)
class SpeechOptions:
    """The first message of a stream, checked: who speaks, at which rate, from when."""

    character: str
    # Voice preset name (the character's unless the request overrides it).
    voice: str
    # Output rate in Hz.
    sample_rate_hz: int
    # Time code of the first sample relative to the turn start, in seconds.
    start_s: float = 0.0


@dataclasses.dataclass(frozen=True)
class Header:
    """First event: the format of the audio that follows (mono PCM)."""

    sample_rate_hz: int


@dataclasses.dataclass(frozen=True)
class Audio:
    """Contiguous audio; ``start_sample`` counts sample frames from the turn start."""

    samples: np.ndarray
    start_sample: int
    sample_rate_hz: int

    @property
    def start_s(self) -> float:
        return self.start_sample / self.sample_rate_hz

    @property
    def duration_s(self) -> float:
        return len(self.samples) / self.sample_rate_hz


@dataclasses.dataclass(frozen=True)
class Timings:
    """Phoneme and word timings relative to the turn start."""

    phonemes: tuple[Phoneme, ...]
    words: tuple[Word, ...]


@dataclasses.dataclass(frozen=True)
class End:
    """Last event: totals of the stream."""

    total_samples: int
    sample_rate_hz: int

    @property
    def total_s(self) -> float:
        return self.total_samples / self.sample_rate_hz


SpeechEvent = Header | Audio | Timings | End


def shift(rendered: Rendered, offset_s: float, scale: float = 1.0) -> Timings:
    """The timings of ``rendered`` scaled by ``scale`` and moved by ``offset_s``."""
    phonemes = tuple(
        Phoneme(p.symbol, offset_s + p.start_s * scale, offset_s + p.end_s * scale)
        for p in rendered.phonemes
    )
    words = tuple(
        Word(w.text, offset_s + w.start_s * scale, offset_s + w.end_s * scale)
        for w in rendered.words
    )
    return Timings(phonemes, words)
