"""Frame-wise acoustic features of speech at the face frame rate, at any sample rate.

Frame ``i`` (30 fps) is analysed in a Hann window of ``WINDOW_S`` centred on the middle of
the frame, ``(i + 0.5) / 30`` s. Band edges are in Hz, so the features mean the same at 8 kHz
and at 48 kHz (bands above the Nyquist frequency are simply empty).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from solami.avatar.rates import FPS

# Analysis window length, in seconds (covers 2-4 pitch periods of adult speech).
WINDOW_S = 0.05
# Power floor added before taking logarithms (about -100 dBFS).
POWER_FLOOR = 1e-10
# First-formant region whose centroid tracks jaw height, in Hz.
F1_BAND_HZ = (150.0, 1200.0)
# Second/third-formant region whose centroid tracks lip spreading, in Hz.
F2_BAND_HZ = (1000.0, 4000.0)
# Frication region (s, sh, f, th), in Hz.
FRICATION_BAND_HZ = (2500.0, 8000.0)
# Whole speech band, in Hz.
SPEECH_BAND_HZ = (80.0, 8000.0)


@dataclasses.dataclass(frozen=True)
class FrameFeatures:
    """Per-frame features, each an array of shape (n_frames,)."""

    # Window power in dB relative to full scale.
    level_db: np.ndarray
    # Power centroid of the F1 band, in Hz (about 300 for /i u/, 800 for /a/).
    f1_centroid_hz: np.ndarray
    # Power centroid of the F2-F3 band, in Hz (high for /i e/, low for /u o/).
    f2_centroid_hz: np.ndarray
    # Share of the speech-band power in the frication band, 0-1.
    frication: np.ndarray

    def __len__(self) -> int:
        return len(self.level_db)


class FrameAnalyzer:
    """Computes ``FrameFeatures`` for frames of audio sampled at ``rate_hz``."""

    def __init__(self, rate_hz: int) -> None:
        self.rate_hz = rate_hz
        self.window_samples = max(16, round(WINDOW_S * rate_hz))
        self._window = np.hanning(self.window_samples).astype(np.float32)
        self._window_power = float(np.sum(self._window**2))
        self._fft_size = 1 << (self.window_samples - 1).bit_length()
        freqs = np.fft.rfftfreq(self._fft_size, 1.0 / rate_hz)
        self._freqs = freqs.astype(np.float32)
        self._bands = {
            name: (freqs >= low) & (freqs < high)
            for name, (low, high) in (
                ("f1", F1_BAND_HZ),
                ("f2", F2_BAND_HZ),
                ("frication", FRICATION_BAND_HZ),
                ("speech", SPEECH_BAND_HZ),
            )
        }

    def window_start(self, frame: int) -> int:
        """Index of the first sample of frame ``frame``'s window (may be negative)."""
        centre = round((frame + 0.5) * self.rate_hz / FPS)
        return centre - self.window_samples // 2

    def window_end(self, frame: int) -> int:
        """One past the last sample frame ``frame``'s window needs."""
        return self.window_start(frame) + self.window_samples

    def analyze(self, samples: np.ndarray, offset: int, first: int, count: int) -> FrameFeatures:
        """Features of frames ``first .. first+count-1``; ``samples[0]`` is sample ``offset`` of
        the stream. Samples outside ``samples`` count as silence."""
        starts = np.array([self.window_start(first + i) for i in range(count)]) - offset
        index = starts[:, None] + np.arange(self.window_samples)[None, :]
        inside = (index >= 0) & (index < len(samples))
        if len(samples):
            frames = np.where(inside, samples[np.clip(index, 0, len(samples) - 1)], 0.0)
        else:
            frames = np.zeros(index.shape, dtype=np.float32)
        windowed = frames.astype(np.float32) * self._window
        # One frame at a time: batched FFTs take vectorised code paths whose rounding depends
        # on the batch size, and streamed frames must equal whole-clip frames bit for bit.
        rows = np.array([self._frame(row) for row in windowed], dtype=np.float64)
        rows = rows.reshape(count, 5)
        return FrameFeatures(
            level_db=10.0 * np.log10(rows[:, 0] + POWER_FLOOR),
            f1_centroid_hz=rows[:, 1],
            f2_centroid_hz=rows[:, 2],
            frication=rows[:, 3] / rows[:, 4],
        )

    def _frame(self, windowed: np.ndarray) -> tuple[float, ...]:
        """Level, F1 and F2 centroids, frication and speech-band power of one frame."""
        power = np.abs(np.fft.rfft(windowed, self._fft_size)) ** 2
        sums = {name: float(power[mask].sum()) + POWER_FLOOR for name, mask in self._bands.items()}
        return (
            float(np.dot(windowed, windowed)) / self._window_power,
            self._centroid(power, "f1", sums["f1"]),
            self._centroid(power, "f2", sums["f2"]),
            sums["frication"],
            sums["speech"],
        )

    def _centroid(self, power: np.ndarray, band: str, total: float) -> float:
        mask = self._bands[band]
        if not mask.any():
            return 0.0
        return float(np.dot(power[mask], self._freqs[mask])) / total
