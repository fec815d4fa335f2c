"""The outgoing end of a speech stream: rendered pieces in, contiguous time-coded audio
chunks at the requested rate out."""

from __future__ import annotations

import numpy as np
import soxr

from services.tts.effects import apply_effect
from services.tts.speech import Audio, End


class AudioOut:
    """Contiguous output audio: effect (continuous phase), streaming resampler (no seams
    between pieces), chunks of at most ``chunk_ms`` with exact sample time codes."""

    def __init__(
        self,
        source_rate_hz: int,
        output_rate_hz: int,
        start_s: float,
        chunk_ms: int,
        effect: str = "",
    ) -> None:
        self.source_rate_hz = source_rate_hz
        self.output_rate_hz = output_rate_hz
        self._start_s = start_s
        self._start_sample = round(start_s * output_rate_hz)
        self._chunk_samples = max(1, output_rate_hz * chunk_ms // 1000)
        self._effect = effect
        self._resampler = (
            soxr.ResampleStream(source_rate_hz, output_rate_hz, 1, dtype="float32", quality="HQ")
            if source_rate_hz != output_rate_hz
            else None
        )
        self._consumed = 0
        self._sent = 0

    @property
    def position_s(self) -> float:
        """Time code, from the turn start, of the next source sample to be added."""
        return self._start_s + self._consumed / self.source_rate_hz

    def add(self, samples: np.ndarray) -> list[Audio]:
        """Audio events for the next ``samples`` (source rate)."""
        samples = np.asarray(samples, dtype=np.float32)
        if samples.size == 0:
            return []
        samples = apply_effect(self._effect, samples, self.source_rate_hz, self._consumed)
        self._consumed += samples.size
        if self._resampler is not None:
            samples = self._resampler.resample_chunk(samples)
        return self._chunks(samples)

    def finish(self) -> tuple[list[Audio], End]:
        """The resampler's remaining audio and the closing totals."""
        tail: list[Audio] = []
        if self._resampler is not None and self._consumed:
            tail = self._chunks(self._resampler.resample_chunk(np.zeros(0, np.float32), last=True))
        return tail, End(self._sent, self.output_rate_hz)

    def _chunks(self, samples: np.ndarray) -> list[Audio]:
        events = []
        for start in range(0, samples.size, self._chunk_samples):
            piece = np.clip(samples[start : start + self._chunk_samples], -1.0, 1.0)
            events.append(Audio(piece, self._start_sample + self._sent, self.output_rate_hz))
            self._sent += piece.size
        return events
