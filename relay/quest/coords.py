"""The headset's body streams as Y-up SMPL-X, and back.

``userStream`` entries carry the user rig's Unity ``localRotation`` per SMPL-X-named bone and the
pelvis world position. The original relay turned them into Z-up ("Blender") SMPL-X: each
quaternion ``(x, y, z, w)`` read as ``(w, x, -y, -z)`` (X mirrored), the pelvis rotation
pre-multiplied by a +90 degree turn about X, positions ``(x, y, z) -> (-x, -z, y)``. The model
side is Y-up, reached with ``Z_UP_TO_Y_UP`` (``solami.avatar.skeleton``): a user facing the
headset's +Z (towards the character) faces -Z in Y-up, where the character, at rest, faces +Z.

``aifbStream`` (the character's current pose) carries the character bones' ``localRotation``
but the root bone's WORLD position (the headset writes ``bone.position`` for both streams). The
SOLAMI relative transform was trained on two people's pelvis positions in one shared world frame
(metres), so the character's root position is converted exactly like the user's pelvis, not
inverted as the rig's ``localPosition``. Its rotations need no change: the headset's scene turns
the character rigs' parent 180 degrees about Y, which makes a rig's frame (``Rig.to_smplx``)
the user's Y-up frame.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from relay.quest.fields import (
    Entry,
    decode_entries,
    format_rows,
    parse_fields,
    parse_rotations,
    position_key,
    rotation_key,
)
from relay.quest.rig import Rig
from solami.avatar.rotations import (
    axis_angle_to_matrix,
    matrix_to_axis_angle,
    matrix_to_quat,
    mirror_quat_x,
    quat_to_matrix,
    rotation_x,
)
from solami.avatar.skeleton import (
    JOINT_NAMES,
    NUM_JOINTS,
    ROOT_JOINT,
    Z_UP_TO_Y_UP,
    check_motion,
)

# The user rig's pelvis localRotation (X mirrored) to the Z-up global orientation.
UNITY_PELVIS_TO_ZUP = rotation_x(90.0)

# Where the headset's scene places the characters: their parent object ``AI`` stands at this
# Unity world position, metres, turned 180 degrees about Y to face the user, who starts at the
# origin facing +Z (SOLAMI-VRClient ``Assets/00_Scene/SOLAMI.unity``, Transform of ``AI``,
# lines 16744-16745).
CHARACTER_ANCHOR_UNITY_M = np.array([0.0, 0.0, 1.36])

# The original relay dropped the first second and the last half second of an utterance's motion
# (frames at 30 fps), unless the clip was too short for that.
USER_TRIM_HEAD_FRAMES = 30
USER_TRIM_TAIL_FRAMES = 15
USER_TRIM_MIN_FRAMES = 45

_ROTATION_KEYS = tuple(rotation_key(name) for name in JOINT_NAMES)
_ROOT_KEY = position_key(ROOT_JOINT)


def unity_to_zup_position(positions: np.ndarray) -> np.ndarray:
    """Unity world positions ``(..., 3)`` to Z-up: ``(x, y, z) -> (-x, -z, y)``."""
    x, y, z = np.moveaxis(np.asarray(positions, dtype=np.float64), -1, 0)
    return np.stack([-x, -z, y], axis=-1)


def zup_to_unity_position(positions: np.ndarray) -> np.ndarray:
    """Inverse of ``unity_to_zup_position``."""
    x, y, z = np.moveaxis(np.asarray(positions, dtype=np.float64), -1, 0)
    return np.stack([-x, z, -y], axis=-1)


def unity_world_to_yup(positions: np.ndarray) -> np.ndarray:
    """Unity world positions ``(..., 3)`` to the Y-up SMPL-X frame of the user's ``trans``."""
    return unity_to_zup_position(positions) @ Z_UP_TO_Y_UP.T


def yup_to_unity_world(positions: np.ndarray) -> np.ndarray:
    """Inverse of ``unity_world_to_yup``."""
    return zup_to_unity_position(np.asarray(positions, dtype=np.float64) @ Z_UP_TO_Y_UP.T)


def user_frames_to_smplx(entries: Sequence[Entry]) -> tuple[np.ndarray, np.ndarray]:
    """``userStream`` entries to Y-up SMPL-X ``poses`` (T, 165) and ``trans`` (T, 3), float32.

    Each entry needs ``pelvis_rotation`` and ``pelvis_position``; other joints it leaves out
    get no rotation; fields of bones SMPL-X does not have are ignored. A malformed entry raises
    ValueError naming the entry and the field.
    """
    try:
        frames = decode_entries(entries)
        positions = parse_fields(frames, [_ROOT_KEY], 3, required=[_ROOT_KEY])[0][:, 0]
        quats, _ = parse_rotations(frames, _ROTATION_KEYS, required=[_ROTATION_KEYS[0]])
    except ValueError as exc:
        raise ValueError(f"userStream {exc}") from exc
    count = len(frames)
    local = quat_to_matrix(mirror_quat_x(quats))
    local[:, 0] = Z_UP_TO_Y_UP @ UNITY_PELVIS_TO_ZUP @ local[:, 0]
    poses = matrix_to_axis_angle(local).reshape(count, 3 * NUM_JOINTS)
    trans = unity_world_to_yup(positions)
    return poses.astype(np.float32), trans.astype(np.float32)


def smplx_to_unity_user_frames(poses: np.ndarray, trans: np.ndarray) -> list[dict[str, str]]:
    """Y-up SMPL-X ``poses`` (T, 165), ``trans`` (T, 3) as the headset's ``userStream`` entries.

    The inverse of ``user_frames_to_smplx``: every SMPL-X joint's ``_rotation`` and
    ``pelvis_position``, as a headset would send them.
    """
    poses, trans = check_motion(poses, trans)
    count = len(poses)
    local = axis_angle_to_matrix(poses.reshape(count, NUM_JOINTS, 3))
    local[:, 0] = UNITY_PELVIS_TO_ZUP.T @ Z_UP_TO_Y_UP @ local[:, 0]
    rotations = format_rows(mirror_quat_x(matrix_to_quat(local)).reshape(-1, 4))
    positions = format_rows(yup_to_unity_world(trans))
    frames = []
    for index in range(count):
        frame = {_ROOT_KEY: positions[index]}
        block = rotations[index * NUM_JOINTS : (index + 1) * NUM_JOINTS]
        frame.update(zip(_ROTATION_KEYS, block, strict=True))
        frames.append(frame)
    return frames


def pose_snapshot_to_smplx(entry: Entry, rig: Rig) -> tuple[np.ndarray, np.ndarray]:
    """The ``aifbStream`` snapshot of the character's pose as Y-up SMPL-X ``(1, 165)``, ``(1, 3)``.

    Character bone names map back through the rig's remap (SMPL-X names for ``Smplx``). The
    rotations come out in the user's Y-up frame (see the module notes); ``trans`` is the root
    bone's world position in the frame of the user's ``trans`` (``user_frames_to_smplx``), in
    metres and unscaled, so the relative transform sees where the two really stand. A malformed
    entry raises ValueError naming the field.
    """
    poses, _ = rig.to_smplx([entry])
    root_key = position_key(rig.root_bone)
    try:
        position = parse_fields(decode_entries([entry]), [root_key], 3, required=[root_key])[0]
    except ValueError as exc:
        raise ValueError(f"{rig.char_id} pose {exc}") from exc
    return poses, unity_world_to_yup(position[:, 0]).astype(np.float32)


def smplx_to_pose_snapshot(poses: np.ndarray, trans: np.ndarray, rig: Rig) -> dict[str, str]:
    """One Y-up SMPL-X frame (``trans`` in the user's frame) as the headset's ``aifbStream``
    entry: the rig's ``localRotation`` fields and the root's world position. The inverse of
    ``pose_snapshot_to_smplx``."""
    poses, trans = check_motion(poses, trans)
    if len(poses) != 1:
        raise ValueError(f"a pose snapshot is one frame, got {len(poses)}")
    entry = rig.frames(poses, trans)[0]
    entry[position_key(rig.root_bone)] = format_rows(yup_to_unity_world(trans))[0]
    return entry


def rest_character_pose(rig: Rig) -> tuple[np.ndarray, np.ndarray]:
    """The character standing at rest where the headset's scene places it (``(1, 165)``,
    ``(1, 3)``, float32): the stand-in for a missing ``aifbStream`` snapshot."""
    poses, _ = rig.to_smplx([rig.rest_frame()])
    # The rig's frame is the user's Y-up frame moved to the anchor (the scene's 180 degree turn
    # and the rig's mirrored X cancel); the rig's units are taken as scene metres.
    trans = unity_world_to_yup(CHARACTER_ANCHOR_UNITY_M) + rig.rest_root_position
    return poses, trans[None].astype(np.float32)


def trim_user_motion(poses: np.ndarray, trans: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Drops the first ``USER_TRIM_HEAD_FRAMES`` and last ``USER_TRIM_TAIL_FRAMES`` frames of a
    user clip longer than ``USER_TRIM_MIN_FRAMES``; shorter clips are returned whole."""
    if len(poses) != len(trans):
        raise ValueError(f"poses and trans differ in length: {len(poses)} vs {len(trans)}")
    if len(poses) <= USER_TRIM_MIN_FRAMES:
        return poses, trans
    end = len(poses) - USER_TRIM_TAIL_FRAMES
    return poses[USER_TRIM_HEAD_FRAMES:end], trans[USER_TRIM_HEAD_FRAMES:end]
