"""What face backends implement: ``FaceBackend.open`` returns a per-stream state that takes audio
in pieces of any size and hands back 30 fps frames of the 61 face channels as soon as they are
final, so a streamed clip gives exactly the frames of the same clip sent whole.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Protocol

import numpy as np

from solami.avatar.rates import FPS
from solami.speech import Phoneme


def frame_count(n_samples: int, rate_hz: int) -> int:
    """Frames that cover ``n_samples`` of audio: round(seconds x 30), halves rounded up."""
    return math.floor(n_samples * FPS / rate_hz + 0.5)


class BackendStream(Protocol):
    """A backend's state for one stream of audio."""

    def push(self, samples: np.ndarray) -> np.ndarray:
        """Takes the next samples; returns the frames that became final, ``(k, 61)``."""
        ...

    def add_phonemes(self, phonemes: Sequence[Phoneme]) -> None:
        """Phoneme timings for audio not yet sent (frames already returned stay as they are)."""
        ...

    def finish(self) -> np.ndarray:
        """No more audio: returns the remaining frames."""
        ...


class FaceBackend(Protocol):
    name: str

    def load(self) -> None: ...

    def open(self, rate_hz: int, start_frame: int) -> BackendStream: ...
