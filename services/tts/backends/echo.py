"""The echo text backend: a benchmarking profile that must never serve users.

``SOLAMI_TTS_BACKEND=echo`` loads no voice: each piece of text comes back at once as a soft
tone whose length grows with the text (about a speaking rate's worth), with its words spread
evenly over it. The audio goes through the service's real text checks, sentence splitting,
voice effects, resampling and chunking, so a load test measures the relay and the stack around
the voice, not the voice.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import numpy as np

from services.tts.backends.base import Rendered, Word
from services.tts.voices import Voice

SAMPLE_RATE_HZ = 16_000
# Seconds of audio per character of text (about 15 characters a second, a speaking rate).
SECONDS_PER_CHAR = 0.065
# The shortest piece of audio, in seconds.
MIN_PIECE_S = 0.2
TONE_HZ = 220.0
TONE_AMPLITUDE = 0.05


class EchoBackend:
    """A ``TextBackend`` answering every text at once with a tone of proportional length."""

    name = "echo"
    sample_rate_hz = SAMPLE_RATE_HZ
    splits_lead_phrase = False

    def load(self) -> None:
        """Nothing to load."""

    def synthesize(
        self, text: str, voice: Voice, character: str, cancel: threading.Event
    ) -> Iterator[Rendered]:
        duration_s = max(MIN_PIECE_S, len(text) * SECONDS_PER_CHAR)
        t = np.arange(int(duration_s * SAMPLE_RATE_HZ), dtype=np.float32) / SAMPLE_RATE_HZ
        samples = (TONE_AMPLITUDE * np.sin(2 * np.pi * TONE_HZ * t)).astype(np.float32)
        texts = text.split()
        step = duration_s / max(1, len(texts))
        words = tuple(Word(w, i * step, (i + 1) * step) for i, w in enumerate(texts))
        yield Rendered(samples, words=words)
