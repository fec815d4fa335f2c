"""What tts backends implement and return.

- A ``TextBackend`` (Piper, eSpeak NG, XTTS-v2) speaks normalised text in a voice and returns
  ``Rendered`` pieces: audio at its native rate with the phoneme and word timings of what it
  says, in seconds from the start of the text it was given.
- A ``Vocoder`` (SoundStorm + the SpeechTokenizer decoder) renders SOLAMI speech units as 16 kHz
  audio in a character's voice, one ``VocoderSession`` per stream.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Iterator
from typing import Protocol

import numpy as np

from services.tts.voices import Voice
from solami.speech import Phoneme

# Speaks a voice prompt when a character has no prompt file: (voice, character) -> (audio, Hz).
PromptSpeaker = Callable[[Voice, str], tuple[np.ndarray, int]]


@dataclasses.dataclass(frozen=True)
class Word:
    """One spoken word as written in the normalised text."""

    text: str
    start_s: float
    end_s: float


@dataclasses.dataclass(frozen=True)
class Rendered:
    """Mono float32 audio at the backend's rate and the timings of what it says."""

    samples: np.ndarray
    phonemes: tuple[Phoneme, ...] = ()
    words: tuple[Word, ...] = ()

    @property
    def has_timings(self) -> bool:
        return bool(self.phonemes or self.words)

    def stretched(self, factor: float) -> Rendered:
        """The same timings ``factor`` times longer, without the audio."""
        return Rendered(
            np.zeros(0, np.float32),
            tuple(Phoneme(p.symbol, p.start_s * factor, p.end_s * factor) for p in self.phonemes),
            tuple(Word(w.text, w.start_s * factor, w.end_s * factor) for w in self.words),
        )


class TextBackend(Protocol):
    name: str
    # Native output rate in Hz (known after load).
    sample_rate_hz: int
    # Whether the first sentence is better spoken as a lead phrase and the rest.
    splits_lead_phrase: bool

    def load(self) -> None: ...

    def synthesize(
        self, text: str, voice: Voice, character: str, cancel: threading.Event
    ) -> Iterator[Rendered]:
        """Normalised text -> audio parts; timings relative to the start of this text."""
        ...


class VocoderSession(Protocol):
    """One stream of units: chunks in, contiguous 16 kHz audio out."""

    def add(self, units: np.ndarray) -> np.ndarray:
        """Audio ready after this chunk of unit ids (some of it may wait for the next one)."""
        ...

    def finish(self) -> np.ndarray:
        """The audio still held back."""
        ...


class Vocoder(Protocol):
    def load(self) -> None: ...

    def prompt(
        self, character: str, voice: Voice, speak: PromptSpeaker, session_id: str = ""
    ) -> object:
        """The voice prompt a session of a character (or voice) speaks with, opaque to the
        caller; ``speak`` makes one when the character has no recorded prompt."""
        ...

    def session(self, prompt: object) -> VocoderSession: ...
