"""The character's animation timeline: idle body and face loops, answer clips, cross-fades.

Pure computation (no I/O): the relay asks for the frame at a time; blending happens in SMPL-X
space (per-joint rotation interpolation) before retargeting onto the character's rig.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy.spatial.transform import Rotation

from solami.avatar.rates import FPS
from solami.avatar.skeleton import NUM_JOINTS


def _ramp(x: float, width: float) -> float:
    if width <= 0:
        return 1.0 if x >= 0 else 0.0
    return float(np.clip(x / width, 0.0, 1.0))


def blend_poses(a: np.ndarray, b: np.ndarray, weight: float) -> np.ndarray:
    """Per-joint spherical interpolation of two (165,) axis-angle poses."""
    if weight <= 0.0:
        return a
    if weight >= 1.0:
        return b
    ra = Rotation.from_rotvec(a.reshape(NUM_JOINTS, 3))
    rb = Rotation.from_rotvec(b.reshape(NUM_JOINTS, 3))
    delta = (ra.inv() * rb).as_rotvec() * weight
    return (ra * Rotation.from_rotvec(delta)).as_rotvec().reshape(-1).astype(np.float32)


@dataclasses.dataclass
class _Segment:
    start: float
    frames: np.ndarray

    @property
    def end(self) -> float:
        return self.start + len(self.frames) / FPS

    def at(self, now: float) -> np.ndarray:
        index = int((now - self.start) * FPS)
        return self.frames[min(max(index, 0), len(self.frames) - 1)]


class Animator:
    """Idle loops plus at most one answer (body clip + face segments), with fades."""

    def __init__(
        self,
        idle_poses: np.ndarray,
        idle_trans: np.ndarray,
        idle_face: np.ndarray,
        blend_s: float,
        epoch: float = 0.0,
    ) -> None:
        self._idle_poses = idle_poses.astype(np.float32)
        self._idle_trans = idle_trans.astype(np.float32)
        self._idle_face = idle_face.astype(np.float32)
        self._blend_s = blend_s
        self._epoch = epoch
        self._body: _Segment | None = None
        self._body_trans: np.ndarray | None = None
        self._faces: list[_Segment] = []
        self._stop_at: float | None = None

    def set_idle(self, poses: np.ndarray, trans: np.ndarray, face: np.ndarray) -> None:
        self._idle_poses, self._idle_trans, self._idle_face = poses, trans, face

    def play_body(self, start: float, poses: np.ndarray, trans: np.ndarray) -> None:
        """Plays an answer body clip from ``start`` (fades in from idle)."""
        self._body = _Segment(start, poses.astype(np.float32))
        self._body_trans = trans.astype(np.float32)
        self._stop_at = None

    def play_face(self, start: float, frames: np.ndarray) -> None:
        """Plays answer face frames from ``start`` (one sentence)."""
        if len(frames):
            self._faces.append(_Segment(start, frames.astype(np.float32)))
            self._stop_at = None

    def stop(self, now: float) -> None:
        """Barge-in or failure: fade back to idle from ``now``."""
        self._stop_at = now

    @property
    def answer_end(self) -> float:
        ends = [s.end for s in self._faces]
        if self._body is not None:
            ends.append(self._body.end)
        end = max(ends, default=0.0)
        return min(end, self._stop_at) if self._stop_at is not None else end

    def busy(self, now: float) -> bool:
        return now < self.answer_end + self._blend_s

    def frame(self, now: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(pose (165,), trans (3,), face (61,)) at ``now`` (seconds, same clock as starts)."""
        idle_index = int((now - self._epoch) * FPS)
        pose = self._idle_poses[idle_index % len(self._idle_poses)]
        trans = self._idle_trans[idle_index % len(self._idle_trans)]
        face = self._idle_face[idle_index % len(self._idle_face)]
        end = self.answer_end
        body = self._body
        if body is not None:
            weight = _ramp(now - body.start, self._blend_s) * _ramp(
                min(body.end, end) - now, self._blend_s
            )
            if weight > 0:
                pose = blend_poses(pose, body.at(now), weight)
                index = min(int((now - body.start) * FPS), len(self._body_trans) - 1)
                trans = (1 - weight) * trans + weight * self._body_trans[max(index, 0)]
            elif now > body.end:
                self._body = None
        live = [s for s in self._faces if s.start <= now < s.end]
        if self._faces:
            first = min(s.start for s in self._faces)
            weight = _ramp(now - first, self._blend_s / 3) * _ramp(end - now, self._blend_s / 3)
            if live and weight > 0:
                face = (1 - weight) * face + weight * live[-1].at(now)
            if now > end + self._blend_s:
                self._faces = []
        return pose, trans, face
