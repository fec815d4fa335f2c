"""The face engine: speech audio (and phoneme timings, when known) -> 30 fps face frames.

Backends implement ``FaceBackend`` from ``backends.base``: ``open`` returns a per-stream state
that takes audio in pieces of any size and hands back frames as soon as they are final, so a
streamed clip gives exactly the frames of the same clip sent whole. This module chooses
backends by settings (UniTalker, torch code throughout, is imported only when its weights are
configured).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np

from services.face.backends.base import BackendStream, FaceBackend
from services.face.backends.echo import EchoFaceBackend
from services.face.backends.viseme import VisemeBackend
from services.face.settings import BACKENDS, FaceSettings
from solami import audio
from solami.avatar.face import CHANNEL_COUNT
from solami.engine import Engine
from solami.errors import InvalidInput
from solami.speech import Phoneme

# Length of the synthetic warm-up clip, in seconds.
WARMUP_S = 1.0
WARMUP_RATE_HZ = 16_000


def make_backend(name: str, settings: FaceSettings) -> FaceBackend:
    """The backend called ``name``."""
    if name == "echo":
        return EchoFaceBackend()
    if name == "unitalker":
        # Imported here: the UniTalker modules import torch, which only this backend needs.
        from services.face.backends.unitalker import UniTalkerBackend

        return UniTalkerBackend(settings)
    return VisemeBackend(settings)


class FaceStream:
    """One Animate stream: checks the duration limit and counts frames."""

    def __init__(self, state: BackendStream, backend: str, rate_hz: int, max_s: float) -> None:
        self.backend = backend
        self.rate_hz = rate_hz
        self._state = state
        self._max_samples = int(max_s * rate_hz)
        self._max_s = max_s
        self.samples_received = 0
        self.frames_sent = 0
        self.finished = False

    def push(self, samples: np.ndarray) -> np.ndarray:
        if self.finished:
            raise InvalidInput("audio after the end of the stream")
        self.samples_received += len(samples)
        if self.samples_received > self._max_samples:
            raise InvalidInput(f"audio is longer than the limit of {self._max_s:.0f} s")
        return self._count(self._state.push(audio.check_samples(samples)))

    def add_phonemes(self, phonemes: Sequence[Phoneme]) -> None:
        for p in phonemes:
            if p.end_s < p.start_s:
                raise InvalidInput(f"phoneme {p.symbol!r} ends before it starts")
        self._state.add_phonemes(phonemes)

    def finish(self) -> np.ndarray:
        if self.finished:
            return np.zeros((0, CHANNEL_COUNT), dtype=np.float32)
        self.finished = True
        return self._count(self._state.finish())

    @property
    def duration_s(self) -> float:
        return self.samples_received / self.rate_hz

    def _count(self, frames: np.ndarray) -> np.ndarray:
        self.frames_sent += len(frames)
        return frames


class FaceEngine(Engine):
    """Speech -> face frames through the backend a request (or the settings) names."""

    def __init__(
        self, settings: FaceSettings, backends: dict[str, FaceBackend] | None = None
    ) -> None:
        self.settings = settings
        if backends is None and settings.backend == "echo":
            # The benchmarking profile serves nothing else.
            backends = {"echo": make_backend("echo", settings)}
        if backends is None:
            backends = {"viseme": make_backend("viseme", settings)}
            if settings.unitalker_weights is not None:
                backends["unitalker"] = make_backend("unitalker", settings)
        self.backends = backends
        self.name = settings.backend
        self._load_lock = threading.Lock()

    def load(self) -> None:
        with self._load_lock:
            for backend in self.backends.values():
                backend.load()

    def warmup(self) -> None:
        t = np.arange(int(WARMUP_S * WARMUP_RATE_HZ)) / WARMUP_RATE_HZ
        tone = (0.1 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
        for name in self.backends:
            self.animate(tone, WARMUP_RATE_HZ, backend=name)

    def decode(self, wav: bytes) -> tuple[np.ndarray, int]:
        """Decodes and checks a whole WAV (raises InvalidInput)."""
        return audio.decode_wav(wav, self.settings.max_audio_s)

    def backend_name(self, requested: str = "") -> str:
        """The backend a request names (empty: the default); InvalidInput when unusable."""
        name = requested or self.settings.backend
        if name not in BACKENDS:
            raise InvalidInput(f"unknown backend {name!r}: use one of {', '.join(BACKENDS)}")
        if name not in self.backends:
            raise InvalidInput(
                f"backend {name!r} is not enabled on this server (it needs "
                "SOLAMI_FACE_UNITALKER_WEIGHTS); use 'viseme' or leave backend empty"
            )
        return name

    def open(self, rate_hz: int, backend: str = "", start_frame: int = 0) -> FaceStream:
        """Starts a stream of audio sampled at ``rate_hz``; frame 0 of it is turn frame
        ``start_frame``."""
        name = self.backend_name(backend)
        if not audio.MIN_SAMPLE_RATE_HZ <= rate_hz <= audio.MAX_SAMPLE_RATE_HZ:
            raise InvalidInput(
                f"sample rate {rate_hz} Hz is not supported: use {audio.MIN_SAMPLE_RATE_HZ}-"
                f"{audio.MAX_SAMPLE_RATE_HZ} Hz"
            )
        state = self.backends[name].open(rate_hz, start_frame)
        return FaceStream(state, name, rate_hz, self.settings.max_audio_s)

    def animate(
        self,
        samples: np.ndarray,
        rate_hz: int,
        phonemes: Sequence[Phoneme] = (),
        backend: str = "",
        start_frame: int = 0,
    ) -> np.ndarray:
        """Frames of a whole clip: ``(round(seconds x 30), 61)`` weights in [0, 1]."""
        stream = self.open(rate_hz, backend, start_frame)
        if phonemes:
            stream.add_phonemes(phonemes)
        frames = [stream.push(samples), stream.finish()]
        return np.concatenate(frames, axis=0)
