"""Motion -> words without a trained captioner: the nearest clip of the motion library.

The agent methods (``dlp+motiongpt``) put a caption of the user's motion into the LLM prompt;
the original server asked MotionGPT (motion -> text) for it. Its weights are not public, and no
package captions SMPL-X by nearest clip, so this module is written here: the user's clip and
every library clip are summarised by one fixed-length *descriptor*, and the caption is the text
of the library clip at the smallest descriptor distance, if that clip is close enough.

Descriptor (``describe``), from forward kinematics of the 22 body joints on the service's
skeleton, sampled at ``DESCRIPTOR_FPS``:

- points: the 21 body joints, a nose point and one point past each wrist (hand direction),
  relative to the pelvis and turned about Y by each frame's own heading (hips + shoulders), so
  neither where the user stands nor where they face matters;
- pose: the mean and the standard deviation over time of every point (what the body looks like
  and what moves how far: both about the same for a clip played faster, slower or in part);
- gaze: the mean and standard deviation of the head's forward direction (nods and head shakes
  turn the head without moving its joint);
- travel: the standard deviation of the pelvis position (sideways, up, forward in the clip's
  mean heading frame): steps, hops, bobbing;
- energy: per body part (head, arms, legs, trunk), the mean speed of its points measured over
  ``ENERGY_STEP_S`` (slow enough to ignore sensor jitter), as ``log1p(speed / ENERGY_REF_M_S)``.

Each block is divided by its scale (``BLOCK_SCALES``: the difference that counts as one unit)
and by the square root of its size and of the number of blocks, so that one Euclidean norm is
the distance: the root mean square over the blocks of each block's RMS difference in units. The
score is ``exp(-(d / SCORE_SCALE) ** 2 / 2)`` in [0, 1]; at the default floor of 0.5 a clip is
recognised up to d = 1.77 (the authored clips played 0.7x-1.4x, cut to 60 % and noised stay
under it; the SOLAMI output clip of the shared data, unlike any of them, is about 5 away).

Caption text reads like MotionGPT's (third person, "a person waves with the right hand"): the
authored clips have such a caption each (``AUTHORED_CAPTIONS``); a clip of a built library or a
user folder answers with its first text as written (HumanML3D and Inter-X texts already read
that way). The answer is empty when:

- the clip is shorter than ``MIN_CAPTION_FRAMES`` (no gesture fits in it; score 0);
- the body barely moves (every part's speed under ``STILL_M_S``; score 0, source "still");
- the nearest clip is one that means nothing to say: the idle clip (standing, listening) or the
  SMPL-X rest pose held (a capture without a tracked body); its score is kept;
- the score is under the floor (``SOLAMI_MOTION_CAPTION_FLOOR``; the best score is kept).

A built library stores its clips' descriptors (``descriptors.f32``, written by the build); one
built before, or with another skeleton or descriptor version, has them computed at load.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from services.motion.backends.base import Caption
from services.motion.features import Motion
from services.motion.library import (
    BuiltLibrary,
    LibraryClip,
    LibraryFormatError,
    MotionLibrary,
    is_built_library,
)
from services.motion.skeleton import BUILT_IN, Skeleton, facing
from solami.avatar import rotations
from solami.avatar.rates import FPS
from solami.avatar.skeleton import JOINT_INDEX, PARENTS, POSE_DIMS
from solami.errors import EngineUnavailable

# Descriptor name and version, recorded in a built library with its stored descriptors.
DESCRIPTOR = "pose-stats-v1"
# Frames per second the descriptor samples a clip at (30 fps clips: every third frame).
DESCRIPTOR_FPS = 10
# Joints used: the pelvis and the 21 body joints (hands and face do not enter).
N_BODY = 22
# Extra points, in the frame of a joint (metres): (joint, offset).
NOSE = ("head", (0.0, 0.03, 0.12))
LEFT_TIP = ("left_wrist", (0.18, 0.0, 0.0))
RIGHT_TIP = ("right_wrist", (-0.18, 0.0, 0.0))
# Gaze: the head's forward direction (a unit vector in the head's frame).
GAZE = (0.0, 0.0, 1.0)
# Time over which speeds are measured, in seconds.
ENERGY_STEP_S = 0.2
# Speed at which the energy term is log(2), in metres per second.
ENERGY_REF_M_S = 0.1
# Every part slower than this: the body is standing still (metres per second).
STILL_M_S = 0.03
# Shortest clip captioned, in frames (1/3 s): no gesture fits in fewer.
MIN_CAPTION_FRAMES = 10
# Difference of each descriptor block (root mean square over its values) that counts as one
# unit of distance: metres for positions and their spread, unit-vector components for the
# gaze, log-speed for the energy.
BLOCK_SCALES = {
    "pose_mean": 0.05,
    "pose_std": 0.02,
    "gaze_mean": 0.1,
    "gaze_std": 0.03,
    "travel": 0.01,
    "energy": 0.35,
}
# Distance (in those units) at which the score is exp(-1/2) = 0.61.
SCORE_SCALE = 1.5
# Default confidence floor (SOLAMI_MOTION_CAPTION_FLOOR).
DEFAULT_FLOOR = 0.5
# Source prefix of a library clip, and the source of a still body.
LIBRARY_SOURCE = "library:"
STILL_SOURCE = "still"
# Names of the bodies that mean "nothing to say": the idle clip and the rest pose held.
IDLE = "idle"
REST_POSE = "rest_pose"
REST_HELD_S = 2.0

# The authored clips as MotionGPT-style captions (see library_clips.py for what each shows).
AUTHORED_CAPTIONS = {
    "wave": "a person raises the right hand and waves",
    "nod": "a person nods the head",
    "head_shake": "a person shakes the head",
    "bow": "a person bows forward from the waist",
    "clap": "a person claps the hands in front of the chest",
    "shrug": "a person shrugs the shoulders with open hands",
    "point": "a person points forward with the right arm",
    "thinking": "a person holds the right hand to the chin, thinking",
    "celebrate": "a person raises both fists and hops, celebrating",
    "dance_step": "a person dances, stepping side to side",
}

_PARTS = {
    "head": ("neck", "head", "nose"),
    "left_arm": ("left_collar", "left_shoulder", "left_elbow", "left_wrist", "left_tip"),
    "right_arm": ("right_collar", "right_shoulder", "right_elbow", "right_wrist", "right_tip"),
    "legs": ("left_knee", "right_knee", "left_ankle", "right_ankle", "left_foot", "right_foot"),
    "trunk": ("spine1", "spine2", "spine3"),
}
# The points in descriptor order: the body joints but the pelvis, then the extra points.
_POINT_NAMES = (
    *(name for name, index in JOINT_INDEX.items() if 0 < index < N_BODY),
    "nose",
    "left_tip",
    "right_tip",
)
_PART_POINTS = tuple(tuple(_POINT_NAMES.index(p) for p in part) for part in _PARTS.values())
N_POINTS = len(_POINT_NAMES)
DESCRIPTOR_DIMS = 2 * 3 * N_POINTS + 2 * 3 + 3 + len(_PARTS)


def _body_points(motion: Motion, skeleton: Skeleton) -> tuple[np.ndarray, ...]:
    """The clip sampled at DESCRIPTOR_FPS: pelvis positions (T, 3), headings (T,) in radians,
    the points (T, N_POINTS, 3) relative to the pelvis and the gaze (T, 3), both in each
    frame's heading frame."""
    step = max(1, round(FPS / DESCRIPTOR_FPS))
    poses = np.asarray(motion.poses[::step, : 3 * N_BODY], dtype=np.float64)
    root = np.asarray(motion.trans[::step], dtype=np.float64)
    local = rotations.axis_angle_to_matrix(poses.reshape(len(poses), N_BODY, 3))
    offsets = skeleton.offsets
    world = [local[:, 0]]
    joints = [np.zeros_like(root)]
    for joint in range(1, N_BODY):
        parent = PARENTS[joint]
        joints.append(joints[parent] + world[parent] @ offsets[joint])
        world.append(world[parent] @ local[:, joint])
    extra = [
        joints[JOINT_INDEX[name]] + world[JOINT_INDEX[name]] @ np.asarray(offset)
        for name, offset in (NOSE, LEFT_TIP, RIGHT_TIP)
    ]
    gaze = world[JOINT_INDEX["head"]] @ np.asarray(GAZE)
    points = np.stack([*joints, *extra, gaze], axis=1)
    forward = facing(points)
    yaw = np.arctan2(forward[:, 0], forward[:, 2])
    turned = np.einsum("tij,tpj->tpi", rotations.rotation_y(-yaw), points[:, 1:])
    return root, yaw, turned[:, :-1], turned[:, -1]


def describe(motion: Motion, skeleton: Skeleton = BUILT_IN) -> np.ndarray:
    """The (DESCRIPTOR_DIMS,) float32 descriptor of a Y-up clip (see the module doc)."""
    return _describe(motion, skeleton)[0]


def _describe(motion: Motion, skeleton: Skeleton) -> tuple[np.ndarray, np.ndarray]:
    """The descriptor and the part speeds (metres per second)."""
    root, yaw, points, gaze = _body_points(motion, skeleton)
    mean_yaw = np.arctan2(np.sin(yaw).mean(), np.cos(yaw).mean())
    travel = ((root - root.mean(0)) @ rotations.rotation_y(-mean_yaw).T).std(0)
    speeds = part_speeds(points)
    blocks = {
        "pose_mean": points.mean(0).ravel(),
        "pose_std": points.std(0).ravel(),
        "gaze_mean": gaze.mean(0),
        "gaze_std": gaze.std(0),
        "travel": travel,
        "energy": np.log1p(speeds / ENERGY_REF_M_S),
    }
    descriptor = np.concatenate(
        [values / (BLOCK_SCALES[name] * np.sqrt(values.size * len(blocks)))
         for name, values in blocks.items()]
    ).astype(np.float32)  # fmt: skip
    return descriptor, speeds


def describe_built(library: BuiltLibrary, skeleton: Skeleton = BUILT_IN) -> np.ndarray:
    """(N, DESCRIPTOR_DIMS) descriptors of every clip of a built library."""
    out = np.empty((len(library.names), DESCRIPTOR_DIMS), np.float32)
    for index in range(len(library.names)):
        start, end = int(library.offsets[index]), int(library.offsets[index + 1])
        out[index] = describe(Motion(library.poses[start:end], library.trans[start:end]), skeleton)
    return out


def part_speeds(points: np.ndarray) -> np.ndarray:
    """Mean speed of each body part's points (metres per second) over ENERGY_STEP_S; zero for
    a clip shorter than that."""
    lag = max(1, round(ENERGY_STEP_S * DESCRIPTOR_FPS))
    if len(points) <= lag:
        return np.zeros(len(_PARTS))
    speed = np.linalg.norm(points[lag:] - points[:-lag], axis=-1).mean(0) * DESCRIPTOR_FPS / lag
    return np.array([speed[list(indices)].mean() for indices in _PART_POINTS])


def clip_caption(clip: LibraryClip) -> str:
    """The caption a library clip answers with (see the module doc)."""
    if clip.source == "built-in" and clip.name in AUTHORED_CAPTIONS:
        return AUTHORED_CAPTIONS[clip.name]
    return clip.descriptions[0]


def silent_anchors(idle: LibraryClip, skeleton: Skeleton) -> tuple[np.ndarray, list[str]]:
    """Descriptors and names of the bodies that mean "nothing to say": the idle clip, and the
    SMPL-X rest pose (T-pose) held, what a capture without a tracked body sends."""
    frames = round(REST_HELD_S * FPS)
    rest = Motion(
        np.zeros((frames, POSE_DIMS)), np.tile([0.0, skeleton.floor_to_pelvis_m, 0.0], (frames, 1))
    )
    descriptors = np.stack([describe(idle.motion, skeleton), describe(rest, skeleton)])
    return descriptors, [IDLE, REST_POSE]


def score_of(distance: float) -> float:
    return float(np.exp(-0.5 * (distance / SCORE_SCALE) ** 2))


class LibraryCaptioner:
    """Nearest library clip by descriptor distance, with a confidence floor."""

    def __init__(
        self,
        descriptors: np.ndarray,
        names: Sequence[str],
        captions: Sequence[str],
        skeleton: Skeleton = BUILT_IN,
        floor: float = DEFAULT_FLOOR,
    ) -> None:
        if len(descriptors) != len(names) or len(names) != len(captions):
            raise ValueError("one descriptor, name and caption per clip")
        self._descriptors = np.asarray(descriptors, dtype=np.float32)
        self._squares = np.einsum("nd,nd->n", self._descriptors, self._descriptors)
        self._names = tuple(names)
        self._captions = tuple(captions)
        self._skeleton = skeleton
        self.floor = floor

    @classmethod
    def for_library(
        cls, library: MotionLibrary, skeleton: Skeleton = BUILT_IN, floor: float = DEFAULT_FLOOR
    ) -> LibraryCaptioner:
        """Every clip of ``library`` (the authored clips and the user's)."""
        clips = [clip for clip in library.clips.values() if clip.name != IDLE]
        descriptors = np.stack([describe(clip.motion, skeleton) for clip in clips])
        names, captions = [c.name for c in clips], [clip_caption(c) for c in clips]
        return cls._with_silent(descriptors, names, captions, library.idle, skeleton, floor)

    @classmethod
    def for_built(
        cls,
        library: BuiltLibrary,
        idle: LibraryClip,
        skeleton: Skeleton = BUILT_IN,
        floor: float = DEFAULT_FLOOR,
    ) -> LibraryCaptioner:
        """The clips of a built library (descriptors as stored, else computed now) and the
        bodies that mean "nothing to say" (``silent_anchors``)."""
        stored = library.descriptors is not None and library.descriptor == DESCRIPTOR
        if stored and skeleton.source == BUILT_IN.source:
            descriptors = np.asarray(library.descriptors, dtype=np.float32)
        else:
            descriptors = describe_built(library, skeleton)
        first_text = np.searchsorted(library.text_clip, np.arange(len(library.names)))
        captions = [library.texts[int(row)] for row in first_text]
        return cls._with_silent(descriptors, library.names, captions, idle, skeleton, floor)

    @classmethod
    def _with_silent(
        cls,
        descriptors: np.ndarray,
        names: Sequence[str],
        captions: Sequence[str],
        idle: LibraryClip,
        skeleton: Skeleton,
        floor: float,
    ) -> LibraryCaptioner:
        """The clips given plus the silent anchors, whose caption is empty."""
        silent, silent_names = silent_anchors(idle, skeleton)
        return cls(
            np.concatenate([descriptors, silent]),
            [*names, *silent_names],
            [*captions, *[""] * len(silent_names)],
            skeleton,
            floor,
        )

    @classmethod
    def load(
        cls, library_dir: Path | None, skeleton: Skeleton, floor: float = DEFAULT_FLOOR
    ) -> LibraryCaptioner:
        """The captioner of the library the service retrieves from (``library_dir``: a user
        folder added to the authored clips, or a built library searched instead)."""
        try:
            if is_built_library(library_dir):
                idle = MotionLibrary.load(None, skeleton).idle
                return cls.for_built(BuiltLibrary.open(library_dir), idle, skeleton, floor)
            return cls.for_library(MotionLibrary.load(library_dir, skeleton), skeleton, floor)
        except (LibraryFormatError, ValueError) as exc:
            raise EngineUnavailable(f"motion library: {exc}") from None

    def caption(self, motion: Motion) -> Caption:
        """What ``motion`` (Y-up, 30 fps) shows, or "" (see the module doc)."""
        if motion.n_frames < MIN_CAPTION_FRAMES:
            return Caption("", 0.0, "")
        query, speeds = _describe(motion, self._skeleton)
        if speeds.max() < STILL_M_S:
            return Caption("", 0.0, STILL_SOURCE)
        squared = self._squares - 2.0 * (self._descriptors @ query) + float(query @ query)
        best = int(np.argmin(squared))
        score = score_of(float(np.sqrt(max(float(squared[best]), 0.0))))
        source = LIBRARY_SOURCE + self._names[best]
        return Caption(self._captions[best] if score >= self.floor else "", score, source)
