"""What asr backends implement and return: a ``Transcriber`` (faster-whisper, openai-whisper)
giving segments of words, and a ``UnitTokenizer`` (SpeechTokenizer) giving unit ids.

Times are seconds relative to the start of the samples a backend was given.
"""

from __future__ import annotations

import dataclasses
from typing import Protocol

import numpy as np


@dataclasses.dataclass(frozen=True)
class Word:
    text: str
    start_s: float
    end_s: float
    probability: float


@dataclasses.dataclass(frozen=True)
class Segment:
    text: str
    start_s: float
    end_s: float
    avg_logprob: float
    no_speech_prob: float
    words: tuple[Word, ...] = ()


class Transcriber(Protocol):
    name: str

    def load(self) -> None: ...

    def transcribe(
        self, samples: np.ndarray, language: str, word_timestamps: bool
    ) -> tuple[list[Segment], str, float]:
        """Segments (times relative to ``samples``), language, language probability."""
        ...


class UnitTokenizer(Protocol):
    def load(self) -> None: ...

    def tokenize(self, samples: np.ndarray, num_layers: int) -> list[np.ndarray]:
        """Unit ids of 16 kHz ``samples``, one array per residual-VQ layer (layer 0 first)."""
        ...
