"""Motion that keeps a face alive whether or not it speaks: blinks, gaze shifts, brow raises and
a slight head sway and nod.

Everything is a function of the absolute frame index (relative to the turn start) and a seed,
so a turn animated in several streams, or in chunks of any size, moves the same way. Values
stay in [0, 1]: gaze is expressed with the ARKit ``EyeLook*`` blendshapes; the head turns,
tilts and nods one way from neutral.
"""

from __future__ import annotations

import numpy as np

from solami.avatar.face import CHANNEL_COUNT, INDEX
from solami.avatar.rates import FPS

# Eyelid closure over the frames of one blink (fast close, slower reopening, about 230 ms).
BLINK_PROFILE = np.array([0.35, 0.85, 1.0, 0.8, 0.5, 0.25, 0.08], dtype=np.float32)
# Shortest gap between blinks and the mean extra gap, in frames (adults blink every 2-6 s).
BLINK_MIN_GAP_FRAMES = 45
BLINK_MEAN_EXTRA_FRAMES = 60
# Shortest fixation and the mean extra fixation time between gaze shifts, in frames.
GAZE_MIN_HOLD_FRAMES = 30
GAZE_MEAN_EXTRA_FRAMES = 50
# Largest gaze offset, as an EyeLook* weight.
GAZE_RANGE = 0.12
# Brow raise and head nod at full speech emphasis.
BROW_RAISE = 0.25
HEAD_NOD = 0.05
# Slow head turn and tilt: amplitude (weight) and period (seconds).
HEAD_YAW_AMPLITUDE = 0.03
HEAD_YAW_PERIOD_S = 7.3
HEAD_ROLL_AMPLITUDE = 0.02
HEAD_ROLL_PERIOD_S = 5.1


class _Schedule:
    """Event start frames drawn from a seeded generator, extended on demand."""

    def __init__(self, seed: int, min_gap: int, mean_extra: int) -> None:
        self._rng = np.random.default_rng(seed)
        self._min_gap = min_gap
        self._mean_extra = mean_extra
        self.starts: list[int] = [int(self._rng.integers(10, min_gap + 10))]
        self.values: list[np.ndarray] = [self._rng.uniform(-1.0, 1.0, 2)]

    def extend_to(self, frame: int) -> None:
        while self.starts[-1] <= frame:
            gap = self._min_gap + self._rng.gamma(2.0, self._mean_extra / 2.0)
            self.starts.append(self.starts[-1] + int(gap))
            self.values.append(self._rng.uniform(-1.0, 1.0, 2))


class IdleMotion:
    """Adds blinks, gaze, brows and head motion to frames."""

    def __init__(self, seed: int, amount: float = 1.0) -> None:
        self.amount = amount
        self._blinks = _Schedule(seed, BLINK_MIN_GAP_FRAMES, BLINK_MEAN_EXTRA_FRAMES)
        self._gaze = _Schedule(seed + 1, GAZE_MIN_HOLD_FRAMES, GAZE_MEAN_EXTRA_FRAMES)
        phases = np.random.default_rng(seed + 2).uniform(0.0, 2.0 * np.pi, 2)
        self._yaw_phase, self._roll_phase = float(phases[0]), float(phases[1])

    def layer(self, first: int, count: int, emphasis: np.ndarray) -> np.ndarray:
        """``(count, 61)`` weights for frames ``first ..``; ``emphasis`` (0-1 per frame) is how
        strongly speech is stressed there."""
        out = np.zeros((count, CHANNEL_COUNT), dtype=np.float32)
        if count == 0 or self.amount <= 0.0:
            return out
        frames = np.arange(first, first + count)
        blink = self._blink(frames)
        out[:, INDEX["EyeBlinkLeft"]] = blink
        out[:, INDEX["EyeBlinkRight"]] = blink
        self._add_gaze(out, frames)
        brows = BROW_RAISE * emphasis
        out[:, INDEX["BrowInnerUp"]] = brows
        out[:, INDEX["BrowOuterUpLeft"]] = 0.6 * brows
        out[:, INDEX["BrowOuterUpRight"]] = 0.6 * brows
        seconds = frames / FPS
        yaw = 0.5 * (1.0 + np.sin(2.0 * np.pi * seconds / HEAD_YAW_PERIOD_S + self._yaw_phase))
        roll = 0.5 * (1.0 + np.sin(2.0 * np.pi * seconds / HEAD_ROLL_PERIOD_S + self._roll_phase))
        out[:, INDEX["HeadYaw"]] = HEAD_YAW_AMPLITUDE * yaw
        out[:, INDEX["HeadRoll"]] = HEAD_ROLL_AMPLITUDE * roll
        out[:, INDEX["HeadPitch"]] = HEAD_NOD * emphasis
        return self.amount * out

    def _blink(self, frames: np.ndarray) -> np.ndarray:
        schedule = self._blinks
        schedule.extend_to(int(frames[-1]))
        starts = np.array(schedule.starts)
        # The last blink starting at or before each frame.
        which = np.searchsorted(starts, frames, side="right") - 1
        phase = frames - starts[np.maximum(which, 0)]
        inside = (which >= 0) & (phase < len(BLINK_PROFILE))
        return np.where(inside, BLINK_PROFILE[np.clip(phase, 0, len(BLINK_PROFILE) - 1)], 0.0)

    def _add_gaze(self, out: np.ndarray, frames: np.ndarray) -> None:
        schedule = self._gaze
        schedule.extend_to(int(frames[-1]))
        starts = np.array(schedule.starts)
        which = np.searchsorted(starts, frames, side="right") - 1
        # Before the first shift the eyes look straight ahead.
        targets = np.array(schedule.values)[np.maximum(which, 0)] * (which >= 0)[:, None]
        right, up = GAZE_RANGE * targets[:, 0], GAZE_RANGE * targets[:, 1]
        out[:, INDEX["EyeLookInLeft"]] = np.maximum(right, 0.0)
        out[:, INDEX["EyeLookOutRight"]] = np.maximum(right, 0.0)
        out[:, INDEX["EyeLookOutLeft"]] = np.maximum(-right, 0.0)
        out[:, INDEX["EyeLookInRight"]] = np.maximum(-right, 0.0)
        out[:, INDEX["EyeLookUpLeft"]] = np.maximum(up, 0.0)
        out[:, INDEX["EyeLookUpRight"]] = np.maximum(up, 0.0)
        out[:, INDEX["EyeLookDownLeft"]] = np.maximum(-up, 0.0)
        out[:, INDEX["EyeLookDownRight"]] = np.maximum(-up, 0.0)
