"""Fakes for runtime tests, named as such: they stand in for a model whose behaviour (delay,
failure) the test must control. Model behaviour itself is tested with the real backends."""

from __future__ import annotations

import threading
import time

import numpy as np

from services.asr.backends.base import Segment


class FakeTranscriber:
    """A Whisper stand-in with knobs: load delay, per-call delay, failure, hang-until-released."""

    name = "fake-whisper"

    def __init__(self, delay_s: float = 0.0, load_delay_s: float = 0.0) -> None:
        self.delay_s = delay_s
        self.load_delay_s = load_delay_s
        self.fail_with: Exception | None = None
        self.release = threading.Event()
        self.release.set()
        self.calls = 0

    def load(self) -> None:
        time.sleep(self.load_delay_s)

    def transcribe(
        self, samples: np.ndarray, language: str, word_timestamps: bool
    ) -> tuple[list[Segment], str, float]:
        self.calls += 1
        self.release.wait()
        time.sleep(self.delay_s)
        if self.fail_with is not None:
            raise self.fail_with
        seconds = len(samples) / 16_000
        return [Segment(f"{seconds:.1f} seconds", 0.0, seconds, -0.1, 0.0)], language or "en", 1.0
