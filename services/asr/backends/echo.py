"""The echo transcriber: a benchmarking profile that must never serve users.

``SOLAMI_ASR_BACKEND=echo`` answers every utterance at once with the same fixed transcript,
whatever was said, so a load test measures the relay's own cost and not Whisper's. Nothing is
loaded and nothing is inferred; the words are spread evenly over the audio it was given.
"""

from __future__ import annotations

import numpy as np

from services.asr.backends.base import Segment, Word
from services.asr.vad import SAMPLE_RATE_HZ

# What every utterance "says".
ECHO_TRANSCRIPT = "Hello there, how are you doing today?"
# Log-probability of the echoed text (confidence 1).
ECHO_LOGPROB = 0.0


class EchoTranscriber:
    """A ``Transcriber`` that answers the fixed ``ECHO_TRANSCRIPT`` at once."""

    name = "echo"

    def load(self) -> None:
        """Nothing to load."""

    def transcribe(
        self, samples: np.ndarray, language: str, word_timestamps: bool
    ) -> tuple[list[Segment], str, float]:
        duration_s = len(samples) / SAMPLE_RATE_HZ
        words: tuple[Word, ...] = ()
        if word_timestamps:
            texts = ECHO_TRANSCRIPT.split()
            step = duration_s / len(texts)
            words = tuple(Word(text, i * step, (i + 1) * step, 1.0) for i, text in enumerate(texts))
        segment = Segment(ECHO_TRANSCRIPT, 0.0, duration_s, ECHO_LOGPROB, 0.0, words)
        return [segment], language or "en", 1.0
