"""SMPL-X motion <-> the SOLAMI 315-dim per-frame motion feature, and the relative transform.

A clip is ``poses`` (T, 165) and ``trans`` (T, 3), Y up, 30 fps (``solami.avatar.skeleton``).

Before the features are taken, a clip is *placed*: turned about Y so that its first frame faces
+Z (hips + shoulders, from forward kinematics), moved so that its first pelvis position is at
x = z = 0 and its lowest joint over the clip is at y = 0. Frame t of the feature (T - 1 frames:
a velocity needs the next frame) is laid out as ``solami.avatar.features`` describes.
``from_features`` is the exact
inverse: the trajectory is integrated from the velocities starting at the origin, jaw and eyes
are zero.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from services.motion.skeleton import Skeleton, facing
from solami.avatar import rotations, skeleton
from solami.avatar.features import BODY_FEATURE_DIMS
from solami.avatar.rates import FPS
from solami.avatar.skeleton import BODY_JOINTS, HAND_JOINTS, NUM_JOINTS, POSE_DIMS, Z_UP_TO_Y_UP


@dataclasses.dataclass(frozen=True)
class Motion:
    """An SMPL-X clip: ``poses`` (T, 165) axis-angle, ``trans`` (T, 3) pelvis metres, Y up."""

    poses: np.ndarray
    trans: np.ndarray

    @property
    def n_frames(self) -> int:
        return int(self.poses.shape[0])

    def rotations(self) -> np.ndarray:
        """(T, 55, 3, 3) local joint rotations."""
        return rotations.axis_angle_to_matrix(self.poses.reshape(-1, NUM_JOINTS, 3))

    def joints(self, skeleton: Skeleton) -> np.ndarray:
        """(T, 55, 3) joint positions."""
        return skeleton.forward(self.rotations(), self.trans)


def blend_frames(
    quats: np.ndarray, trans: np.ndarray, i0: np.ndarray, i1: np.ndarray, frac: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Frames ``frac`` of the way from frames ``i0`` to ``i1``: per-joint slerp of ``quats``
    (T, J, 4) and linear ``trans`` (T, 3)."""
    q = rotations.slerp(quats[i0], quats[i1], np.repeat(frac[:, None], quats.shape[1], 1))
    return q, trans[i0] + frac[:, None] * (trans[i1] - trans[i0])


def resample(motion: Motion, rate_hz: float, target_hz: float = FPS) -> Motion:
    """``motion`` recorded at ``rate_hz`` as frames at ``target_hz`` over the same time."""
    if not rate_hz > 0:
        raise ValueError(f"frame rate must be positive, got {rate_hz}")
    if abs(rate_hz - target_hz) < 1e-6:
        return motion
    n = motion.n_frames
    count = int(np.floor((n - 1) * target_hz / rate_hz + 1e-9)) + 1
    frame = np.arange(count) * (rate_hz / target_hz)
    i0 = np.minimum(np.floor(frame).astype(int), n - 1)
    i1 = np.minimum(i0 + 1, n - 1)
    quats = rotations.matrix_to_quat(motion.rotations())
    q, trans = blend_frames(quats, motion.trans, i0, i1, frame - i0)
    return Motion(rotations.quat_to_axis_angle(q).reshape(count, POSE_DIMS), trans)


@dataclasses.dataclass(frozen=True)
class Placement:
    """Where a clip was in the world: ``canonical = Ry(yaw) @ (world - offset)``."""

    yaw_rad: float
    offset: np.ndarray


def convert_up_axis(motion: Motion, matrix: np.ndarray = Z_UP_TO_Y_UP) -> Motion:
    """Re-expresses a clip in another world frame: global orient ``M @ R``, pelvis ``M @ p``
    (with the default matrix: Z-up -> Y-up, and since it is its own inverse, Y-up -> Z-up)."""
    return Motion(*skeleton.convert_up_axis(motion.poses, motion.trans, matrix))


def placement_of(motion: Motion, skeleton: Skeleton) -> Placement:
    """The placement that makes ``motion`` start at the origin facing +Z, floor at y = 0."""
    joints = motion.joints(skeleton)
    forward = facing(joints[0])
    yaw = -np.arctan2(forward[0], forward[2])
    offset = np.array([motion.trans[0, 0], joints[..., 1].min(), motion.trans[0, 2]])
    return Placement(float(yaw), offset)


def apply_placement(motion: Motion, placement: Placement) -> Motion:
    """World clip -> canonical clip."""
    turn = rotations.rotation_y(placement.yaw_rad)
    poses = motion.poses.astype(np.float64, copy=True)
    poses[:, :3] = rotations.matrix_to_axis_angle(turn @ motion.rotations()[:, 0])
    return Motion(poses, (motion.trans - placement.offset) @ turn.T)


def undo_placement(motion: Motion, placement: Placement) -> Motion:
    """Canonical clip -> where the original clip was in the world."""
    turn = rotations.rotation_y(-placement.yaw_rad)
    poses = motion.poses.astype(np.float64, copy=True)
    poses[:, :3] = rotations.matrix_to_axis_angle(turn @ motion.rotations()[:, 0])
    return Motion(poses, motion.trans @ turn.T + placement.offset)


def to_features(motion: Motion) -> np.ndarray:
    """(T - 1, 315) features of an already placed clip of T >= 2 frames."""
    rot = motion.rotations()
    orient = rot[:, 0]
    yaw = rotations.heading(orient[:-1])
    step = np.diff(motion.trans.astype(np.float64), axis=0)
    local_step = np.einsum("tji,tj->ti", rotations.rotation_y(yaw), step)
    return np.concatenate(
        [
            local_step[:, [0, 2]],
            motion.trans[:-1, 1:2],
            rotations.matrix_to_6d(orient[:-1]),
            rotations.matrix_to_6d(rot[:-1, list(BODY_JOINTS)]).reshape(len(yaw), -1),
            rotations.matrix_to_6d(rot[:-1, list(HAND_JOINTS)]).reshape(len(yaw), -1),
        ],
        axis=1,
    )


def features_of(motion: Motion, skeleton: Skeleton) -> tuple[np.ndarray, Placement]:
    """Places a world clip and returns its features and the placement used."""
    placement = placement_of(motion, skeleton)
    return to_features(apply_placement(motion, placement)), placement


def from_features(
    features: np.ndarray, start_xz: np.ndarray | None = None
) -> tuple[Motion, np.ndarray]:
    """(N, 315) features -> canonical clip of N frames, and the pelvis xz after the last frame
    (the start of a following chunk). The trajectory starts at ``start_xz`` (default origin)."""
    features = np.asarray(features, dtype=np.float64)
    n = features.shape[0]
    orient = rotations.six_d_to_matrix(features[:, 3:9])
    body = rotations.six_d_to_matrix(features[:, 9:BODY_FEATURE_DIMS].reshape(n, -1, 6))
    hands = rotations.six_d_to_matrix(features[:, BODY_FEATURE_DIMS:].reshape(n, -1, 6))
    local_step = np.zeros((n, 3))
    local_step[:, [0, 2]] = features[:, 0:2]
    step = np.einsum("tij,tj->ti", rotations.rotation_y(rotations.heading(orient)), local_step)
    start = np.zeros(2) if start_xz is None else np.asarray(start_xz, dtype=np.float64)
    path = start + np.concatenate([np.zeros((1, 2)), np.cumsum(step[:, [0, 2]], axis=0)])
    trans = np.stack([path[:-1, 0], features[:, 2], path[:-1, 1]], axis=1)
    poses = np.zeros((n, NUM_JOINTS, 3))
    poses[:, 0] = rotations.matrix_to_axis_angle(orient)
    poses[:, list(BODY_JOINTS)] = rotations.matrix_to_axis_angle(body)
    poses[:, list(HAND_JOINTS)] = rotations.matrix_to_axis_angle(hands)
    return Motion(poses.reshape(n, POSE_DIMS), trans), path[-1]


def relative_transform(user: Motion, character: Motion, skeleton: Skeleton) -> np.ndarray:
    """The 5-dim relative transform of the user's first frame in the character's frame.

    With ``F`` the turn about Y that makes a person face +Z and ``p`` the pelvis position:
    ``R = F_user^T @ F_character`` and ``d = F_character @ (p_user - p_character)``; the
    feature is ``[R[0, 0], R[2, 0], d_x, d_y, d_z]`` (the 6D entries 0 and 2 plus the
    position: the SOLAMI transform tokenizer's input). Both clips must be in one world frame,
    metres: training took the two people's pelvis positions from the same capture world
    (``get_relative_pose``, original ``models/vla/motion/smplx_process.py``), and the relay
    reads the character's root as a world position like the user's pelvis.
    """
    turns = []
    for motion in (user, character):
        forward = facing(motion.joints(skeleton)[0])
        turns.append(rotations.rotation_y(-np.arctan2(forward[0], forward[2])))
    relative = turns[0].T @ turns[1]
    offset = turns[1] @ (user.trans[0] - character.trans[0])
    return np.array([relative[0, 0], relative[2, 0], *offset])
