"""Voice activity detection with silero-vad (its ONNX model ships in the package).

Every headset upload is exactly 10 s, mostly trailing silence; trimming it before recognition
saves work and stops Whisper from hallucinating words in silence.
"""

from __future__ import annotations

import dataclasses
import threading

import numpy as np

SAMPLE_RATE_HZ = 16_000
# Shortest run of speech that counts, in milliseconds.
MIN_SPEECH_MS = 150


@dataclasses.dataclass(frozen=True)
class Trimmed:
    """The speech part of an utterance."""

    samples: np.ndarray
    # Where the kept part starts in the original audio, in seconds.
    offset_s: float

    @property
    def duration_s(self) -> float:
        return len(self.samples) / SAMPLE_RATE_HZ


class SpeechTrimmer:
    """Cuts leading and trailing silence; keeps pauses inside the utterance."""

    def __init__(self, threshold: float, pad_ms: int) -> None:
        self._threshold = threshold
        self._pad = int(pad_ms * SAMPLE_RATE_HZ / 1000)
        self._lock = threading.Lock()
        self._model = None

    def load(self) -> None:
        import torch

        threads = torch.get_num_threads()
        from silero_vad import get_speech_timestamps, load_silero_vad

        torch.set_num_threads(threads)  # importing silero_vad sets it to 1 process-wide
        self._model = load_silero_vad(onnx=True)
        self._get_speech_timestamps = get_speech_timestamps

    def trim(self, samples: np.ndarray) -> Trimmed:
        """The span from the first to the last detected speech (padded); empty when none."""
        import torch

        with self._lock:
            spans = self._get_speech_timestamps(
                torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32)),
                self._model,
                threshold=self._threshold,
                sampling_rate=SAMPLE_RATE_HZ,
                min_speech_duration_ms=MIN_SPEECH_MS,
            )
        if not spans:
            return Trimmed(samples[:0], 0.0)
        start = max(0, spans[0]["start"] - self._pad)
        end = min(len(samples), spans[-1]["end"] + self._pad)
        return Trimmed(samples[start:end], start / SAMPLE_RATE_HZ)
