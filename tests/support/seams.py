"""Seams in chunked speech: how much the audio changes where one chunk's audio meets the
next, against the same measure inside the chunks. Used by the Vocode seam test and the tts
benchmark to compare the relay's one Vocode stream per reply with one stream per clip.

Two measures, each taken at every seam and at every boundary of the same length inside a
chunk (at least ``FRAME_SAMPLES`` away from a seam):
- the sample jump ``|x[n] - x[n-1]|`` (a click);
- the spectral flux: the distance between the magnitude spectra (DC left out) of the
  ``FRAME_SAMPLES`` before and after the boundary, relative to their size (a change of
  timbre).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import numpy as np

# Frame of the spectral flux: 20 ms at 16 kHz (one speech unit).
FRAME_SAMPLES = 320


@dataclasses.dataclass(frozen=True)
class SeamStats:
    """One measure at the seams and inside the chunks."""

    seams: np.ndarray
    inside: np.ndarray

    @property
    def worst_ratio(self) -> float:
        """The largest seam value over the inside 99th percentile."""
        return float(self.seams.max() / np.percentile(self.inside, 99))

    @property
    def median_ratio(self) -> float:
        """The median seam value over the inside median."""
        return float(np.median(self.seams) / np.median(self.inside))


def chunk_seams(lengths: Sequence[int]) -> list[int]:
    """Sample indices where each chunk after the first starts, for chunks of ``lengths``."""
    return [int(n) for n in np.cumsum(lengths)[:-1]]


def sample_jumps(samples: np.ndarray, seams: Sequence[int]) -> SeamStats:
    """``|x[n] - x[n-1]|`` at each seam ``n`` and at every sample inside the chunks."""
    jumps = np.abs(np.diff(samples.astype(np.float64)))
    at_seams = np.array([jumps[n - 1] for n in seams])
    return SeamStats(at_seams, np.delete(jumps, _near(seams, len(jumps), 1)))


def spectral_flux(samples: np.ndarray, seams: Sequence[int]) -> SeamStats:
    """Spectral flux across each seam and across every frame boundary inside the chunks."""
    x = samples.astype(np.float64)
    window = np.hanning(FRAME_SAMPLES)

    def spectrum(frame: np.ndarray) -> np.ndarray:
        # Without the frame's mean (DC), which would swamp the rest.
        return np.abs(np.fft.rfft(window * (frame - frame.mean())))[1:]

    def flux(n: int) -> float:
        before = spectrum(x[n - FRAME_SAMPLES : n])
        after = spectrum(x[n : n + FRAME_SAMPLES])
        scale = np.linalg.norm(before) + np.linalg.norm(after) + 1e-12
        return float(np.linalg.norm(after - before) / scale)

    edges = range(FRAME_SAMPLES, len(x) - FRAME_SAMPLES + 1, FRAME_SAMPLES)
    near = set(_near(seams, len(x), FRAME_SAMPLES))
    inside = np.array([flux(n) for n in edges if n not in near])
    at_seams = np.array([flux(n) for n in seams if FRAME_SAMPLES <= n <= len(x) - FRAME_SAMPLES])
    return SeamStats(at_seams, inside)


MEASURES: dict[str, Callable[[np.ndarray, Sequence[int]], SeamStats]] = {
    "sample_jump": sample_jumps,
    "spectral_flux": spectral_flux,
}


def _near(seams: Sequence[int], size: int, reach: int) -> list[int]:
    """Indices below ``size`` less than ``reach`` from a seam."""
    return sorted({i for n in seams for i in range(n - reach, n + reach) if 0 <= i < size})
