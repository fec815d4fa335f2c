"""The SMPL-X skeleton every part shares: joint names and order of the ``poses`` vector, the
kinematic tree, the world frames, and validation of a clip.

A clip is ``poses`` (T, 165) axis-angle, three numbers per joint in ``JOINT_NAMES`` order
(global orient, 21 body joints, jaw + two eyes, 15 + 15 hand joints), and ``trans`` (T, 3), the
pelvis position in metres. The model side is Y-up with a character at rest facing +Z; the
original relay recorded Z-up ("Blender") data, which ``Z_UP_TO_Y_UP`` converts.
"""

from __future__ import annotations

import numpy as np

from solami.avatar.rotations import axis_angle_to_matrix, matrix_to_axis_angle

NUM_JOINTS = 55
# Axis-angle numbers per frame: 3 per joint.
POSE_DIMS = 3 * NUM_JOINTS
# Pelvis position numbers per frame (x, y, z).
TRANS_DIMS = 3
ROOT_JOINT = "pelvis"

# Joint order of the ``poses`` vector (joint i covers poses[..., 3 * i : 3 * i + 3]), with the
# names of the SMPL-X model files (and of the SOLAMI rig remaps, ``retargetmap/*.bmap``).
JOINT_NAMES: tuple[str, ...] = (
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2",
    "left_ankle", "right_ankle", "spine3", "left_foot", "right_foot", "neck", "left_collar",
    "right_collar", "head", "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
    "left_wrist", "right_wrist", "jaw", "left_eye_smplhf", "right_eye_smplhf",
    "left_index1", "left_index2", "left_index3", "left_middle1", "left_middle2", "left_middle3",
    "left_pinky1", "left_pinky2", "left_pinky3", "left_ring1", "left_ring2", "left_ring3",
    "left_thumb1", "left_thumb2", "left_thumb3",
    "right_index1", "right_index2", "right_index3", "right_middle1", "right_middle2",
    "right_middle3", "right_pinky1", "right_pinky2", "right_pinky3", "right_ring1",
    "right_ring2", "right_ring3", "right_thumb1", "right_thumb2", "right_thumb3",
)  # fmt: skip

# Parent joint index of each joint (-1 for the root); parents come before their children.
PARENTS: tuple[int, ...] = (
    -1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 15, 15, 15,
    20, 25, 26, 20, 28, 29, 20, 31, 32, 20, 34, 35, 20, 37, 38,
    21, 40, 41, 21, 43, 44, 21, 46, 47, 21, 49, 50, 21, 52, 53,
)  # fmt: skip

JOINT_INDEX: dict[str, int] = {name: index for index, name in enumerate(JOINT_NAMES)}
# The 21 body joints after the root, and the 30 hand joints (left then right).
BODY_JOINTS: tuple[int, ...] = tuple(range(1, 22))
HAND_JOINTS: tuple[int, ...] = tuple(range(25, 55))

# Z-up ("Blender") world to Y-up: x' = -x, y' = z, z' = y. A half turn, its own inverse.
Z_UP_TO_Y_UP = np.array([[-1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 1.0, 0.0]])


def rig_order() -> tuple[str, ...]:
    """Joint names depth first, children in joint order: the bone order of the SMPL-X rig."""
    children: dict[int, list[int]] = {index: [] for index in range(NUM_JOINTS)}
    for index, parent in enumerate(PARENTS):
        if parent >= 0:
            children[parent].append(index)
    order: list[str] = []
    stack = [0]
    while stack:
        index = stack.pop()
        order.append(JOINT_NAMES[index])
        stack.extend(reversed(children[index]))
    return tuple(order)


def global_rotations(local: np.ndarray) -> np.ndarray:
    """Chains ``(T, 55, 3, 3)`` parent-relative rotations into root-frame rotations."""
    world = np.empty_like(local)
    world[:, 0] = local[:, 0]
    for index in range(1, NUM_JOINTS):
        world[:, index] = world[:, PARENTS[index]] @ local[:, index]
    return world


def local_rotations(world: np.ndarray) -> np.ndarray:
    """Inverse of ``global_rotations``: ``(T, 55, 3, 3)`` root-frame to parent-relative."""
    parents = np.array(PARENTS[1:])
    local = np.empty_like(world)
    local[:, 0] = world[:, 0]
    local[:, 1:] = np.swapaxes(world[:, parents], -1, -2) @ world[:, 1:]
    return local


def check_motion(poses: np.ndarray, trans: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Validates an SMPL-X clip: ``poses`` (T, 165) and ``trans`` (T, 3), finite, same T.
    Returns both as float64; ValueError names what is wrong."""
    poses = np.asarray(poses, dtype=np.float64)
    trans = np.asarray(trans, dtype=np.float64)
    if poses.ndim != 2 or poses.shape[1] != POSE_DIMS:
        raise ValueError(f"poses must have shape (T, {POSE_DIMS}), got {poses.shape}")
    if trans.shape != (len(poses), TRANS_DIMS):
        raise ValueError(f"trans must have shape ({len(poses)}, {TRANS_DIMS}), got {trans.shape}")
    if not (np.isfinite(poses).all() and np.isfinite(trans).all()):
        raise ValueError("poses and trans must be finite")
    return poses, trans


def convert_up_axis(
    poses: np.ndarray, trans: np.ndarray, matrix: np.ndarray = Z_UP_TO_Y_UP
) -> tuple[np.ndarray, np.ndarray]:
    """Re-expresses a clip in another world frame: global orient ``M @ R``, pelvis ``M @ p``
    (with the default matrix: Z-up -> Y-up, and since it is its own inverse, Y-up -> Z-up).
    Returns float64 ``(poses, trans)``."""
    poses = np.asarray(poses, dtype=np.float64).copy()
    orient = axis_angle_to_matrix(poses[:, :3])
    poses[:, :3] = matrix_to_axis_angle(matrix @ orient)
    return poses, np.asarray(trans, dtype=np.float64) @ matrix.T
