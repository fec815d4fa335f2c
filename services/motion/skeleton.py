"""A rest skeleton on the SMPL-X joint tree (``solami.avatar.skeleton``) and forward kinematics.

Joint positions are only needed for the facing direction of a clip (hips + shoulders), its
floor height (lowest joint), the relative transform between user and character and the MPJPE
of reconstructions; the licensed SMPL-X model is therefore optional. Without it the built-in
rest skeleton is used: the 55 SMPL-X joints in SMPL-X order with approximate adult proportions
(1.70 m tall, pelvis 0.93 m above the floor), in the SMPL-X rest frame: Y up, facing +Z, the
subject's left on +X, T-pose (arms along +-X, palms down, fingers straight).

With ``SOLAMI_MOTION_SKELETON_MODEL`` pointing at an SMPL-X ``.npz`` (``SMPLX_NEUTRAL.npz``),
the rest joints are ``J_regressor @ v_template`` of that model.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from solami.avatar.skeleton import JOINT_INDEX, NUM_JOINTS, PARENTS
from solami.errors import EngineUnavailable

# Rest positions of the body joints relative to the pelvis, metres; right side = mirrored left.
_BODY_REST_M = {
    "pelvis": (0.0, 0.0, 0.0),
    "left_hip": (0.058, -0.085, -0.010),
    "spine1": (0.0, 0.105, -0.025),
    "left_knee": (0.100, -0.465, 0.000),
    "spine2": (0.0, 0.235, -0.015),
    "left_ankle": (0.090, -0.870, -0.035),
    "spine3": (0.0, 0.290, 0.000),
    "left_foot": (0.115, -0.925, 0.090),
    "neck": (0.0, 0.510, -0.020),
    "left_collar": (0.075, 0.420, -0.005),
    "head": (0.0, 0.600, 0.020),
    "left_shoulder": (0.180, 0.440, -0.020),
    "left_elbow": (0.440, 0.430, -0.040),
    "left_wrist": (0.690, 0.430, -0.040),
    "jaw": (0.0, 0.570, 0.050),
    "left_eye_smplhf": (0.032, 0.665, 0.085),
}
# Left-hand fingers: first joint relative to the wrist (m), direction, segment lengths (m).
_FINGERS = {
    "index": ((0.095, 0.005, 0.025), (1.0, -0.05, 0.0), (0.037, 0.024)),
    "middle": ((0.098, 0.005, 0.003), (1.0, -0.05, 0.0), (0.040, 0.027)),
    "pinky": ((0.080, -0.005, -0.040), (1.0, -0.05, -0.1), (0.028, 0.018)),
    "ring": ((0.090, 0.000, -0.018), (1.0, -0.05, -0.05), (0.035, 0.025)),
    "thumb": ((0.025, -0.012, 0.025), (0.6, -0.1, 0.8), (0.035, 0.032)),
}
# Joints that give the facing direction: right hip, left hip, right shoulder, left shoulder.
FACING_JOINTS = (2, 1, 17, 16)
UP = np.array([0.0, 1.0, 0.0])


def _built_in_rest() -> np.ndarray:
    rest = np.zeros((NUM_JOINTS, 3))
    mirror = np.array([-1.0, 1.0, 1.0])
    for name, position in _BODY_REST_M.items():
        rest[JOINT_INDEX[name]] = position
        if name.startswith("left_"):
            rest[JOINT_INDEX["right_" + name[5:]]] = np.array(position) * mirror
    for finger, (base, direction, lengths) in _FINGERS.items():
        unit = np.array(direction) / np.linalg.norm(direction)
        points = [np.array(base)]
        for length in lengths:
            points.append(points[-1] + unit * length)
        for i, point in enumerate(points, start=1):
            rest[JOINT_INDEX[f"left_{finger}{i}"]] = rest[JOINT_INDEX["left_wrist"]] + point
            right = rest[JOINT_INDEX["right_wrist"]] + point * mirror
            rest[JOINT_INDEX[f"right_{finger}{i}"]] = right
    return rest


@dataclasses.dataclass(frozen=True)
class Skeleton:
    """Rest joint positions (pelvis at the origin) on the SMPL-X tree."""

    rest: np.ndarray
    source: str = "built-in"

    @property
    def offsets(self) -> np.ndarray:
        """(55, 3) each joint's rest position relative to its parent (the pelvis: zero)."""
        parents = np.array(PARENTS)
        offsets = self.rest - self.rest[np.maximum(parents, 0)]
        offsets[0] = 0.0
        return offsets

    @property
    def floor_to_pelvis_m(self) -> float:
        """Height of the pelvis above the lowest rest joint."""
        return float(-self.rest[:, 1].min())

    def forward(self, rotations: np.ndarray, root: np.ndarray) -> np.ndarray:
        """Joint positions (..., 55, 3) from local rotations (..., 55, 3, 3) and the pelvis
        position (..., 3)."""
        offsets = self.offsets
        world_rot = [rotations[..., 0, :, :]]
        positions = [np.asarray(root, dtype=np.float64)]
        for joint in range(1, NUM_JOINTS):
            parent = PARENTS[joint]
            parent_rot = world_rot[parent]
            positions.append(positions[parent] + parent_rot @ offsets[joint])
            world_rot.append(parent_rot @ rotations[..., joint, :, :])
        return np.stack(positions, axis=-2)


BUILT_IN = Skeleton(_built_in_rest())


def facing(joints: np.ndarray) -> np.ndarray:
    """Unit forward directions (..., 3) in the ground plane from joint positions (..., 55, 3):
    perpendicular to the hips + shoulders across vector, as in HumanML3D/SOLAMI."""
    r_hip, l_hip, r_shoulder, l_shoulder = FACING_JOINTS
    across = (joints[..., r_hip, :] - joints[..., l_hip, :]) + (
        joints[..., r_shoulder, :] - joints[..., l_shoulder, :]
    )
    forward = np.cross(UP, across)
    forward[..., 1] = 0.0
    return forward / np.maximum(np.linalg.norm(forward, axis=-1, keepdims=True), 1e-9)


def load_smplx_skeleton(path: Path) -> Skeleton:
    """Rest joints of an SMPL-X model file (``.npz`` with ``v_template``, ``J_regressor`` and
    ``kintree_table``), shifted so that the pelvis is at the origin."""
    if not path.is_file():
        raise EngineUnavailable(f"SMPL-X model file not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as model:
            template = np.asarray(model["v_template"], dtype=np.float64)
            regressor = np.asarray(model["J_regressor"], dtype=np.float64)
            tree = np.asarray(model["kintree_table"]).astype(np.int64)
    except (KeyError, ValueError, OSError) as exc:
        raise EngineUnavailable(
            f"{path} is not an SMPL-X model .npz (v_template, J_regressor, kintree_table): {exc}"
        ) from None
    if regressor.shape[0] < NUM_JOINTS or regressor.shape[1] != template.shape[0]:
        raise EngineUnavailable(
            f"{path}: J_regressor {regressor.shape} does not fit v_template {template.shape}"
        )
    parents = tuple(int(p) if i else -1 for i, p in enumerate(tree[0][:NUM_JOINTS]))
    if parents != PARENTS:
        raise EngineUnavailable(f"{path}: the kinematic tree is not SMPL-X's")
    rest = regressor[:NUM_JOINTS] @ template
    return Skeleton(rest - rest[0], source=str(path))
