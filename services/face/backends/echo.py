"""The echo face: a benchmarking profile that must never serve users.

``SOLAMI_FACE_BACKEND=echo`` loads no model and reads no audio features: every frame is the
neutral face (all 61 channels at 0), as many frames as the audio covers, handed back as soon
as the audio arrives. A load test measures the relay and the stack around the face model with
it, not the model.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from services.face.backends.base import frame_count
from solami.avatar.face import CHANNEL_COUNT
from solami.avatar.rates import FPS
from solami.speech import Phoneme


class EchoStream:
    """Neutral frames for one stream of audio: those fully covered as audio comes, the rest
    (``frame_count`` of the whole clip) at the end, so streamed and whole clips agree."""

    def __init__(self, rate_hz: int) -> None:
        self._rate_hz = rate_hz
        self._samples = 0
        self._sent = 0

    def push(self, samples: np.ndarray) -> np.ndarray:
        self._samples += len(samples)
        return self._frames(math.floor(self._samples * FPS / self._rate_hz))

    def add_phonemes(self, phonemes: Sequence[Phoneme]) -> None:
        """Timings change nothing: the face stays neutral."""

    def finish(self) -> np.ndarray:
        return self._frames(frame_count(self._samples, self._rate_hz))

    def _frames(self, total: int) -> np.ndarray:
        count = max(0, total - self._sent)
        self._sent += count
        return np.zeros((count, CHANNEL_COUNT), dtype=np.float32)


class EchoFaceBackend:
    """A ``FaceBackend`` whose every frame is the neutral face."""

    name = "echo"

    def load(self) -> None:
        """Nothing to load."""

    def open(self, rate_hz: int, start_frame: int) -> EchoStream:
        return EchoStream(rate_hz)
