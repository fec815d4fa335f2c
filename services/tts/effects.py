"""Signal effects that make one recorded voice into several: pitch/formant shift, robot."""

from __future__ import annotations

import numpy as np

from solami import audio

# Ring-modulation carrier of the robot effect, in Hz.
ROBOT_CARRIER_HZ = 55.0
# Share of the ring-modulated signal in the robot effect's output (the rest stays dry).
ROBOT_MIX = 0.55
EFFECTS = ("", "robot")


def shift_pitch(samples: np.ndarray, rate_hz: int, factor: float) -> np.ndarray:
    """Plays ``samples`` ``factor`` times faster: pitch and formants rise by ``factor`` and the
    duration shrinks by it (callers render ``factor`` times slower first)."""
    if abs(factor - 1.0) < 1e-3 or samples.size == 0:
        return samples
    return audio.resample(samples, round(rate_hz * factor), rate_hz)


def apply_effect(effect: str, samples: np.ndarray, rate_hz: int, start_sample: int) -> np.ndarray:
    """``samples`` with ``effect``; ``start_sample`` keeps the carrier phase continuous across
    the pieces of one stream."""
    if not effect or samples.size == 0:
        return samples
    if effect == "robot":
        t = (start_sample + np.arange(samples.size)) / rate_hz
        carrier = np.sin(2 * np.pi * ROBOT_CARRIER_HZ * t)
        return (samples * (1.0 - ROBOT_MIX + ROBOT_MIX * carrier)).astype(np.float32)
    raise ValueError(f"unknown effect {effect!r}")
