"""The frame of the character's root in the relative transform, from the headset's fields.

SOLAMI's transform token was trained on two people's pelvis positions in one world frame, metres
(``get_relative_pose`` in the original ``models/vla/motion/smplx_process.py``). The headset
writes both the user's pelvis (``userStream``) and the character's root (``aifbStream``) as Unity
world positions; the scene stands the character 1.36 m in front of the user, turned to face them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from relay.quest.coords import (
    CHARACTER_ANCHOR_UNITY_M,
    pose_snapshot_to_smplx,
    rest_character_pose,
    smplx_to_pose_snapshot,
    user_frames_to_smplx,
    zup_to_unity_position,
)
from relay.quest.rig import Rig
from services.motion import features
from services.motion.features import Motion
from services.motion.skeleton import BUILT_IN, facing
from tests.support.motion_models import MOTION_AI

DATA = Path(__file__).resolve().parents[2] / "shared" / "solami-data"
needs_data = pytest.mark.skipif(
    not DATA.is_dir(), reason=f"SOLAMI data folder {DATA} (../shared/solami-data) is missing"
)
CHARACTERS = ("Batman", "Bnncat", "Chappie", "Kvrc", "Link", "Trump", "Vrmgirl", "Smplx")
USER_PELVIS_HEIGHT_M = 0.95
# The original relay stored the character's world position divided by this (for ``Smplx``,
# whose height ratio is 1: ``demos/VRRelay/aic_utils/npz_saver_utils.py``, ``transl_ai``).
ORIGINAL_CHARACTER_POSITION_DIVISOR = 1.03
# The ``Smplx`` character's pelvis localPosition height in the headset's scene, metres.
SMPLX_SCENE_PELVIS_HEIGHT_M = 0.97


def csv(values) -> str:
    return ",".join(f"{float(v):.6f}" for v in values)


def user_standing_at(position_unity) -> Motion:
    """A user at ``position_unity`` (Unity world, metres) facing the headset's +Z."""
    entry = {"pelvis_position": csv(position_unity), "pelvis_rotation": "0,0,0,1"}
    return Motion(*(a.astype(np.float64) for a in user_frames_to_smplx([entry, entry])))


def character_snapshot(rig: Rig, root_unity) -> Motion:
    """The character at rest with its root at ``root_unity``, as ``aifbStream`` sends it."""
    entry = rig.rest_frame()
    entry[f"{rig.root_bone}_position"] = csv(root_unity)
    return Motion(*(a.astype(np.float64) for a in pose_snapshot_to_smplx(entry, rig)))


def load_rig(char: str) -> Rig:
    if char != "Smplx" and not DATA.is_dir():
        pytest.skip(f"SOLAMI data folder {DATA} is missing")
    return Rig.load(DATA if DATA.is_dir() else None, char)


def heading(motion: Motion) -> np.ndarray:
    return facing(motion.joints(BUILT_IN)[0])


@pytest.mark.parametrize("char", CHARACTERS)
def test_a_user_one_metre_in_front_of_the_character(char):
    rig = load_rig(char)
    user = user_standing_at([0.0, USER_PELVIS_HEIGHT_M, 0.0])
    root_height = rig.rest_root_position[1]
    character = character_snapshot(rig, [0.0, root_height, 1.0])
    # In Y-up both stand on the user's frame: the user faces -Z, the character +Z, 1 m apart.
    np.testing.assert_allclose(heading(user), [0, 0, -1], atol=1e-6)
    np.testing.assert_allclose(heading(character), [0, 0, 1], atol=1e-3)
    np.testing.assert_allclose(character.trans[0], [0.0, root_height, -1.0], atol=1e-5)
    relative = features.relative_transform(user, character, BUILT_IN)
    assert relative[0] == pytest.approx(-1.0, abs=1e-3)  # they face each other
    assert relative[1] == pytest.approx(0.0, abs=0.05)
    # The user is 1 m straight ahead of the character whatever its size (no rig scaling).
    np.testing.assert_allclose(relative[[2, 4]], [0.0, 1.0], atol=1e-4)
    assert relative[3] == pytest.approx(USER_PELVIS_HEIGHT_M - root_height, abs=1e-4)


@pytest.mark.parametrize("side", [-0.5, 0.5])
def test_a_user_to_one_side_is_on_that_side_in_the_characters_frame(side):
    rig = load_rig("Smplx")
    user = user_standing_at([side, USER_PELVIS_HEIGHT_M, 0.0])
    character = character_snapshot(rig, [0.0, SMPLX_SCENE_PELVIS_HEIGHT_M, 1.0])
    relative = features.relative_transform(user, character, BUILT_IN)
    # The character faces the user (Unity -Z), so Unity +X is its left: SMPL-X +X, its left too.
    np.testing.assert_allclose(relative[[2, 4]], [side, 1.0], atol=1e-4)


@needs_data
def test_the_original_capture_reads_as_the_scene_placed_it():
    """``motion_ai.npz``: the original relay's copy of one turn with the ``Smplx`` character."""
    with np.load(MOTION_AI) as data:
        user_zup = Motion(data["poses_user"], data["trans_user"])
        character_zup = Motion(data["poses_ai"], data["trans_ai"])
    # Undo the original's scaling: what the headset sent was the root's world position, at the
    # scene's anchor (1.36 m ahead, turned to the user) with the SMPL-X pelvis 0.97 m high.
    root_unity = zup_to_unity_position(character_zup.trans[0] * ORIGINAL_CHARACTER_POSITION_DIVISOR)
    expected = CHARACTER_ANCHOR_UNITY_M + np.array([0.0, SMPLX_SCENE_PELVIS_HEIGHT_M, 0.0])
    np.testing.assert_allclose(root_unity, expected, atol=0.03)
    user = features.convert_up_axis(user_zup)
    character = features.convert_up_axis(
        Motion(character_zup.poses, character_zup.trans * ORIGINAL_CHARACTER_POSITION_DIVISOR)
    )
    # The same pose through the headset's fields and our reading of them.
    rig = load_rig("Smplx")
    entry = smplx_to_pose_snapshot(character.poses, character.trans, rig)
    np.testing.assert_allclose(
        [float(v) for v in entry["pelvis_position"].split(",")], root_unity, atol=1e-5
    )
    read = Motion(*(a.astype(np.float64) for a in pose_snapshot_to_smplx(entry, rig)))
    np.testing.assert_allclose(read.trans, character.trans, atol=1e-5)
    relative = features.relative_transform(user, read, BUILT_IN)
    assert relative[0] == pytest.approx(-1.0, abs=0.01)  # face to face
    assert relative[4] == pytest.approx(1.35, abs=0.03)  # the user 1.35 m ahead of it
    assert abs(relative[2]) < 0.15
    # Reading the world position as the rig's localPosition put the user behind the character.
    _, local_trans = rig.to_smplx([entry])
    wrong = features.relative_transform(user, Motion(read.poses, local_trans), BUILT_IN)
    assert wrong[4] < -1.2


@pytest.mark.parametrize("char", CHARACTERS)
def test_the_rest_stand_in_faces_the_user_at_the_scene_anchor(char):
    rig = load_rig(char)
    poses, trans = rest_character_pose(rig)
    character = Motion(poses.astype(np.float64), trans.astype(np.float64))
    user = user_standing_at([0.0, USER_PELVIS_HEIGHT_M, 0.0])
    relative = features.relative_transform(user, character, BUILT_IN)
    assert relative[0] == pytest.approx(-1.0, abs=1e-3)
    assert relative[4] == pytest.approx(CHARACTER_ANCHOR_UNITY_M[2], abs=0.1)
    assert abs(relative[2]) < 0.05


def original_relative_pose(user: Motion, character: Motion) -> np.ndarray:
    """The training side's ``get_relative_pose`` (quaternions, hips + shoulders facing), P1 the
    user and P2 the character, the 5 entries ``[0, 2, 6, 7, 8]`` the server kept."""
    turns = []
    for motion in (user, character):
        forward = facing(motion.joints(BUILT_IN)[0])
        turns.append(Rotation.align_vectors([[0, 0, 1]], [forward])[0])
    quat_p1_in_p2 = turns[0].inv() * turns[1]
    pos_p1_in_p2 = turns[1].apply(user.trans[0] - character.trans[0])
    matrix = quat_p1_in_p2.as_matrix()
    cont6d = np.concatenate([matrix[:, 0], matrix[:, 1]])
    return np.concatenate([cont6d, pos_p1_in_p2])[[0, 2, 6, 7, 8]]


def test_the_encoder_computes_the_training_sides_transform():
    rng = np.random.default_rng(3)
    for _ in range(20):
        poses = np.zeros((2, 2, 165))
        poses[:, :, 1] = rng.uniform(-np.pi, np.pi, size=(2, 1))  # turned about Y
        trans = np.zeros((2, 2, 3))
        trans[:, :, [0, 2]] = rng.uniform(-3, 3, size=(2, 1, 2))
        trans[:, :, 1] = rng.uniform(0.5, 1.0, size=(2, 1))
        user, character = Motion(poses[0], trans[0]), Motion(poses[1], trans[1])
        np.testing.assert_allclose(
            features.relative_transform(user, character, BUILT_IN),
            original_relative_pose(user, character),
            atol=1e-6,
        )
