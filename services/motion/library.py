"""The motion library TextToMotion retrieves from: authored clips plus the user's own.

Built-in clips (``library_clips.py``) are keyframed joint rotations: each key sets Euler angles
(degrees, ``Rx @ Ry @ Rz``, local to the parent joint) for some joints and inherits the rest
from the previous key; the first key inherits the relaxed standing pose. Between keys every
joint turns along the shortest path (slerp) with ease-in-out (smoothstep) timing, and a
breathing layer (spine, collars, 4 s period) is added on top so that no clip is ever frozen.
Looping clips end on their first key.

User clips: a folder of ``<name>.npz`` (``poses`` (T, 165), ``trans`` (T, 3), Y-up, 30 fps,
optional boolean ``loop``) each with ``<name>.txt`` holding one description per line. They are
placed like the built-ins: starting at x = z = 0 facing +Z.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from services.motion.features import Motion, apply_placement, placement_of
from services.motion.library_clips import BUILT_IN_CLIPS, RELAXED, ClipSpec, Euler
from services.motion.skeleton import BUILT_IN, Skeleton
from solami.avatar import rotations
from solami.avatar.rates import FPS
from solami.avatar.skeleton import JOINT_INDEX, NUM_JOINTS, POSE_DIMS

# Breathing layer: period (s) and amplitudes (degrees) of the spine and collar channels.
BREATH_PERIOD_S = 4.0
BREATH_SPINE_DEG = 1.2
BREATH_COLLAR_DEG = 0.8
# Shortest and longest accepted user clip, in frames.
MIN_CLIP_FRAMES = 2
MAX_USER_CLIP_FRAMES = 60 * FPS


@dataclasses.dataclass(frozen=True)
class LibraryClip:
    """A ready clip of the library."""

    name: str
    descriptions: tuple[str, ...]
    motion: Motion
    loop: bool
    source: str

    @property
    def duration_s(self) -> float:
        return self.motion.n_frames / FPS


def _pose_keys(spec: ClipSpec, base: Mapping[str, Euler]) -> tuple[np.ndarray, np.ndarray]:
    eulers, roots = [], []
    pose, root = dict(base), (0.0, 0.0, 0.0)
    for key in spec.keys:
        if key.reset:
            pose = dict(base)
        pose.update(key.joints)
        root = key.root if key.root is not None else root
        angles = np.zeros((NUM_JOINTS, 3))
        for joint, euler in pose.items():
            angles[JOINT_INDEX[joint]] = euler
        eulers.append(angles)
        roots.append(root)
    return np.array(eulers), np.array(roots, dtype=np.float64)


def _ease(x: np.ndarray) -> np.ndarray:
    return x * x * (3.0 - 2.0 * x)


def render(spec: ClipSpec, base: Mapping[str, Euler], skeleton: Skeleton = BUILT_IN) -> Motion:
    """Samples an authored clip at 30 fps into an SMPL-X clip standing at the origin."""
    times = np.array([key.t_s for key in spec.keys])
    if len(times) < 2 or np.any(np.diff(times) <= 0) or times[0] != 0.0:
        raise ValueError(f"clip {spec.name}: keys must start at 0 s and increase")
    eulers, roots = _pose_keys(spec, base)
    keys = rotations.matrix_to_quat(rotations.euler_xyz_to_matrix(eulers))
    n = round(times[-1] * FPS) + (0 if spec.loop else 1)
    t = np.arange(n) / FPS
    segment = np.clip(np.searchsorted(times, t, side="right") - 1, 0, len(times) - 2)
    fraction = _ease(np.clip((t - times[segment]) / np.diff(times)[segment], 0.0, 1.0))
    quats = rotations.slerp(keys[segment], keys[segment + 1], fraction[:, None])
    offset = (1 - fraction[:, None]) * roots[segment] + fraction[:, None] * roots[segment + 1]
    breath = np.zeros((n, NUM_JOINTS, 3))
    wave = np.sin(2 * np.pi * t / BREATH_PERIOD_S)
    breath[:, JOINT_INDEX["spine3"], 0] = -BREATH_SPINE_DEG * wave
    breath[:, JOINT_INDEX["left_collar"], 2] = BREATH_COLLAR_DEG * wave
    breath[:, JOINT_INDEX["right_collar"], 2] = -BREATH_COLLAR_DEG * wave
    local = rotations.quat_to_matrix(quats) @ rotations.euler_xyz_to_matrix(breath)
    poses = rotations.matrix_to_axis_angle(local)
    trans = offset + np.array([0.0, skeleton.floor_to_pelvis_m, 0.0])
    return Motion(poses.reshape(n, POSE_DIMS), trans)


def load_user_clips(directory: Path, skeleton: Skeleton = BUILT_IN) -> list[LibraryClip]:
    """The user's clips in ``directory`` (see the module doc); a bad file raises ValueError
    naming it."""
    clips = []
    for path in sorted(directory.glob("*.npz")):
        captions = path.with_suffix(".txt")
        if not captions.is_file():
            raise ValueError(f"{path}: missing descriptions file {captions.name}")
        descriptions = tuple(
            line.strip() for line in captions.read_text().splitlines() if line.strip()
        )
        if not descriptions:
            raise ValueError(f"{captions}: no descriptions")
        with np.load(path, allow_pickle=False) as data:
            poses = np.asarray(data["poses"], dtype=np.float64)
            trans = np.asarray(data["trans"], dtype=np.float64)
            loop = bool(data["loop"]) if "loop" in data.files else False
        if poses.ndim != 2 or poses.shape[1] != POSE_DIMS or trans.shape != (len(poses), 3):
            raise ValueError(f"{path}: poses must be (T, 165) and trans (T, 3)")
        if not MIN_CLIP_FRAMES <= len(poses) <= MAX_USER_CLIP_FRAMES:
            raise ValueError(f"{path}: {len(poses)} frames, accepted 2 to {MAX_USER_CLIP_FRAMES}")
        if not (np.isfinite(poses).all() and np.isfinite(trans).all()):
            raise ValueError(f"{path}: contains NaN or infinite values")
        motion = Motion(poses, trans)
        placement = placement_of(motion, skeleton)
        placement = dataclasses.replace(placement, offset=placement.offset * [1.0, 0.0, 1.0])
        clips.append(
            LibraryClip(
                path.stem, descriptions, apply_placement(motion, placement), loop, str(path)
            )
        )
    return clips


class MotionLibrary:
    """Named clips with their descriptions; ``idle`` is what others blend in and out of."""

    def __init__(self, clips: Sequence[LibraryClip]) -> None:
        self.clips = {clip.name: clip for clip in clips}
        if "idle" not in self.clips:
            raise ValueError("the motion library needs an 'idle' clip")

    @property
    def idle(self) -> LibraryClip:
        return self.clips["idle"]

    @classmethod
    def load(cls, user_dir: Path | None = None, skeleton: Skeleton = BUILT_IN) -> MotionLibrary:
        """The built-in clips, then the user's (a user clip replaces a built-in of its name)."""
        clips = [
            LibraryClip(
                spec.name, spec.descriptions, render(spec, RELAXED, skeleton), spec.loop, "built-in"
            )
            for spec in BUILT_IN_CLIPS
        ]
        if user_dir is not None:
            clips += load_user_clips(user_dir, skeleton)
        return cls(clips)

    def export(self, directory: Path) -> list[Path]:
        """Writes every clip as ``<name>.npz`` + ``<name>.txt`` (the user-clip format)."""
        directory.mkdir(parents=True, exist_ok=True)
        written = []
        for clip in self.clips.values():
            path = directory / f"{clip.name}.npz"
            np.savez(path, poses=clip.motion.poses, trans=clip.motion.trans, loop=clip.loop)
            path.with_suffix(".txt").write_text("\n".join(clip.descriptions) + "\n")
            written.append(path)
        return written
