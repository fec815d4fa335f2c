"""SMPL-X retargeted onto the eight character rigs, read back, and against the original clips."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from relay.quest.characters import ECHO_CHAR_ID, UNITY_CHARACTERS
from relay.quest.clips import load_unity_clip, unity_clip_to_smplx
from relay.quest.coords import pose_snapshot_to_smplx, smplx_to_pose_snapshot
from relay.quest.rig import (
    SMPLX_REST_PELVIS_BLENDER_M,
    Rig,
    read_bmap,
)
from solami.avatar.skeleton import JOINT_NAMES, PARENTS, rig_order

DATA = Path(__file__).resolve().parents[2] / "shared" / "solami-data"
pytestmark = pytest.mark.skipif(
    not DATA.is_dir(), reason=f"SOLAMI data folder {DATA} (../shared/solami-data) is missing"
)
CHARACTERS = ("Batman", "Bnncat", "Chappie", "Kvrc", "Link", "Trump", "Vrmgirl", "Smplx")
QUAT = re.compile(r"^-?\d+\.\d{6},-?\d+\.\d{6},-?\d+\.\d{6},-?\d+\.\d{6}$")


def unity_quat(text: str) -> np.ndarray:
    return np.array([float(v) for v in text.split(",")])


def blender_rotation(text: str) -> Rotation:
    """A Unity localRotation read the original relay's way: (x, y, z, w) -> (w, x, -y, -z)."""
    x, y, z, w = unity_quat(text)
    return Rotation.from_quat([w, x, -y, -z], scalar_first=True)


def bone_data(char: str) -> dict:
    return json.loads((DATA / "bone_data" / f"{char}.json").read_text())["bones"]


def mapped_bones(char: str) -> set[str]:
    """Targets named in the remap file (a first field other than None or empty)."""
    text = (DATA / "retargetmap" / f"Smplx2{char}.bmap").read_text()
    names = {line.split("%")[0] for line in text.splitlines() if "%" in line}
    return names - {"None", ""}


@pytest.fixture(scope="module")
def motion() -> tuple[np.ndarray, np.ndarray]:
    data = np.load(DATA / "anim_data" / "Smplx_ai.npz")
    return data["poses"].astype(np.float64), data["trans"].astype(np.float64)


@pytest.fixture(scope="module")
def rigs() -> dict[str, Rig]:
    return {char: Rig.load(DATA, char) for char in CHARACTERS}


def test_character_ids_are_the_headsets():
    assert set(UNITY_CHARACTERS) == set(CHARACTERS)


def test_the_echo_character_is_shown_on_the_smplx_rig():
    echo, smplx = Rig.load(None, ECHO_CHAR_ID), Rig.load(None, "Smplx")
    assert (echo.char_id, echo.bone_names) == (smplx.char_id, smplx.bone_names)


@pytest.mark.parametrize("char", CHARACTERS)
def test_retargeted_clip_has_unit_quaternions_for_exactly_the_mapped_bones(char, rigs, motion):
    rig = rigs[char]
    frames = rig.frames(*motion)
    assert len(frames) == len(motion[0])
    bones = set(JOINT_NAMES) if char == "Smplx" else mapped_bones(char)
    expected = {f"{bone}_rotation" for bone in bones} | {f"{rig.root_bone}_position"}
    for frame in frames:
        assert set(frame) == expected
    quats = np.array(
        [[unity_quat(f[k]) for k in sorted(f) if k.endswith("_rotation")] for f in frames]
    )
    assert np.isfinite(quats).all()
    np.testing.assert_allclose(np.linalg.norm(quats, axis=-1), 1.0, atol=1e-5)
    assert all(QUAT.match(value) for value in frames[0].values() if value.count(",") == 3)


@pytest.mark.parametrize("char", CHARACTERS)
def test_root_height_is_plausible(char, rigs, motion):
    rig = rigs[char]
    heights = np.array([unity_quat(f[f"{rig.root_bone}_position"])[1] for f in rig.frames(*motion)])
    rest_height = rig.rest_root_position[1]
    assert 0.2 < rest_height < 1.2  # metres: a cat to a tall superhero
    assert 0.8 < np.median(heights) / rest_height < 1.2
    root_rest = bone_data(char if char != "Smplx" else "smplx")[rig.root_bone]["matrix_local"]
    armature = json.loads(
        (DATA / "bone_data" / f"{'smplx' if char == 'Smplx' else char}.json").read_text()
    )["armature"]["armature_matrix"]
    world_height = (np.array(armature) @ np.array(root_rest))[2, 3]
    assert rest_height == pytest.approx(world_height, abs=1e-5)


@pytest.mark.parametrize("char", CHARACTERS)
def test_rest_pose_retargets_to_the_rigs_rest_local_rotations(char, rigs):
    rig = rigs[char]
    still = rig.frames(np.zeros((1, 165)), np.array([[0.0, 0.9, 0.0]]))[0]
    rest = rig.rest_frame()
    assert set(still) == set(rest)
    bones = bone_data("smplx" if char == "Smplx" else char)
    for bone in rig.bone_names:
        got = blender_rotation(still[f"{bone}_rotation"])
        assert (got.inv() * blender_rotation(rest[f"{bone}_rotation"])).magnitude() < 1e-5
        # The rest localRotation from the Blender rest matrices, independently.
        own = np.array(bones[bone]["matrix_local"])[:3, :3]
        parent = bones[bone]["parent"]
        if parent is None:
            to_y_up = Rotation.from_euler("x", -90, degrees=True).as_matrix()
            expected = to_y_up @ own
        else:
            expected = np.linalg.inv(np.array(bones[parent]["matrix_local"])[:3, :3]) @ own
        angle = (got.inv() * Rotation.from_matrix(expected)).magnitude()
        assert angle < 1e-4, bone


@pytest.mark.parametrize("char", CHARACTERS)
def test_turning_the_body_turns_the_root_about_unity_up(char, rigs):
    rig = rigs[char]
    poses = np.zeros((1, 165))
    poses[0, :3] = Rotation.from_euler("y", 90, degrees=True).as_rotvec()
    turned = unity_quat(
        rig.frames(poses, np.array([[0.0, 0.9, 0.0]]))[0][f"{rig.root_bone}_rotation"]
    )
    rest = unity_quat(rig.rest_frame()[f"{rig.root_bone}_rotation"])
    # Unity is left-handed: a left turn (+90 about Y-up's +Y) is -90 about Unity's +Y.
    expected = Rotation.from_euler("y", -90, degrees=True) * Rotation.from_quat(rest)
    assert (expected.inv() * Rotation.from_quat(turned)).magnitude() < 1e-5


def test_walking_forward_moves_the_character_along_unity_plus_z(rigs):
    count = 10
    trans = np.stack([np.zeros(count), np.full(count, 0.9), np.linspace(0, 1, count)], axis=1)
    for rig in rigs.values():
        frames = rig.frames(np.zeros((count, 165)), trans)
        z = [unity_quat(f[f"{rig.root_bone}_position"])[2] for f in frames]
        assert np.all(np.diff(z) > 0)


def test_chappie_matches_the_original_idle_magnitudes(rigs, motion):
    """The model's first frame (standing, facing +Z) against the original Chappie idle."""
    rig = rigs["Chappie"]
    ours = rig.frames(motion[0][:1], motion[1][:1])[0]
    idle = load_unity_clip(DATA / "anim_data" / "Chappie_Idle.json")[0]
    assert set(ours) <= set(idle)
    hips = "mixamorig:Hips"
    ours_height = unity_quat(ours[f"{hips}_position"])[1]
    idle_height = unity_quat(idle[f"{hips}_position"])[1]
    assert ours_height == pytest.approx(idle_height, rel=0.1)
    hips_angle = (
        blender_rotation(ours[f"{hips}_rotation"]).inv()
        * blender_rotation(idle[f"{hips}_rotation"])
    ).magnitude()
    assert np.degrees(hips_angle) < 15
    spine = [b for b in rig.bone_names if "Spine" in b or "Neck" in b or "Head" in b]
    for bone in spine:
        angle = (
            blender_rotation(ours[f"{bone}_rotation"]).inv()
            * blender_rotation(idle[f"{bone}_rotation"])
        ).magnitude()
        assert np.degrees(angle) < 30, bone


def test_chappie_idle_reads_back_through_smplx(rigs):
    rig = rigs["Chappie"]
    idle = load_unity_clip(DATA / "anim_data" / "Chappie_Idle.json")
    poses, trans = unity_clip_to_smplx(DATA / "anim_data" / "Chappie_Idle.json", rig)
    assert poses.shape == (len(idle), 165) and trans.shape == (len(idle), 3)
    up = Rotation.from_rotvec(poses[:, :3]).apply([0.0, 1.0, 0.0])
    forward = Rotation.from_rotvec(poses[:, :3]).apply([0.0, 0.0, 1.0])
    assert np.all(up[:, 1] > 0.95) and np.all(forward[:, 2] > 0.95)  # upright, facing +Z
    again = rig.frames(poses, trans)
    for original, replay in zip(idle, again, strict=True):
        for key, value in replay.items():
            expected = unity_quat(original[key])
            got = unity_quat(value)
            if key.endswith("_position"):
                np.testing.assert_allclose(got, expected, atol=1e-5)
            else:
                assert min(np.abs(got - expected).max(), np.abs(got + expected).max()) < 1e-5, key


def test_chappie_run_reads_back_as_running_forward(rigs):
    poses, trans = unity_clip_to_smplx(DATA / "anim_data" / "Chappie_Run.json", rigs["Chappie"])
    forward = Rotation.from_rotvec(poses[:, :3]).apply([0.0, 0.0, 1.0])
    travel = trans[-1] - trans[0]
    assert travel[2] > 2.0 and abs(travel[0]) < 0.3
    assert np.all(forward[:, 2] > 0.8)


def test_idle_plays_on_every_character(rigs):
    poses, trans = unity_clip_to_smplx(DATA / "anim_data" / "Chappie_Idle.json", rigs["Chappie"])
    for rig in rigs.values():
        frames = rig.frames(poses, trans)
        height = unity_quat(frames[0][f"{rig.root_bone}_position"])[1]
        assert 0.8 < height / rig.rest_root_position[1] < 1.2


@pytest.mark.parametrize("char", CHARACTERS)
def test_pose_snapshot_reads_back_to_the_same_fields(char, rigs, motion):
    rig = rigs[char]
    frame = rig.frames(motion[0][100:101], motion[1][100:101])[0]
    snapshot = {k.encode(): v.encode() for k, v in frame.items()}
    poses, trans = pose_snapshot_to_smplx(snapshot, rig)
    assert poses.shape == (1, 165) and trans.shape == (1, 3)
    again = smplx_to_pose_snapshot(poses, trans, rig)
    for key, value in frame.items():
        np.testing.assert_allclose(unity_quat(again[key]), unity_quat(value), atol=1e-5)
    if char == "Smplx":
        expected = Rotation.from_rotvec(motion[0][100].reshape(55, 3)).as_matrix()
        got = Rotation.from_rotvec(poses[0].reshape(55, 3)).as_matrix()
        np.testing.assert_allclose(got, expected, atol=1e-5)


def test_pose_snapshot_without_root_position_is_rejected(rigs):
    rig = rigs["Vrmgirl"]
    frame = rig.rest_frame()
    del frame["J_Bip_C_Hips_position"]
    with pytest.raises(ValueError, match="Vrmgirl pose entry 0: missing field 'J_Bip_C_Hips_pos"):
        pose_snapshot_to_smplx(frame, rig)
    frame = rig.rest_frame()
    frame["J_Bip_C_Spine_rotation"] = "0,0,1"
    with pytest.raises(ValueError, match="'J_Bip_C_Spine_rotation' must hold 4"):
        pose_snapshot_to_smplx(frame, rig)


def test_ten_second_clip_retargets_every_frame(rigs, motion):
    poses = np.resize(motion[0], (300, 165))
    trans = np.resize(motion[1], (300, 3))
    for char in ("Vrmgirl", "Smplx"):
        frames = rigs[char].frames(poses, trans)
        assert len(frames) == 300
        rotations = [value for key, value in frames[-1].items() if key.endswith("_rotation")]
        assert rotations and all(QUAT.match(value) for value in rotations)


def test_smplx_rig_needs_no_files_and_matches_smplx_json():
    rig = Rig.load(None, "Smplx")
    bones = bone_data("smplx")
    assert rig.bone_names == rig_order() == tuple(bones)
    assert rig.root_bone == "pelvis"
    for name, parent in zip(JOINT_NAMES, PARENTS, strict=True):
        assert bones[name]["parent"] == (None if parent < 0 else JOINT_NAMES[parent])
        # Every SMPL-X bone rests at +90 degrees about X in Blender: the identity in Y-up.
        rest = np.array(bones[name]["matrix_local"])[:3, :3]
        np.testing.assert_allclose(
            rest, Rotation.from_euler("x", 90, degrees=True).as_matrix(), atol=1e-6
        )
    pelvis = np.array(bones["pelvis"]["matrix_local"])[:3, 3]
    np.testing.assert_allclose(SMPLX_REST_PELVIS_BLENDER_M, pelvis, atol=1e-6)
    assert rig.position_scale == 1.0


def test_smplx_frames_are_the_poses_with_x_mirrored(motion):
    rig = Rig.load(None, "Smplx")
    frame = rig.frames(motion[0][:1], motion[1][:1])[0]
    for joint, name in enumerate(JOINT_NAMES):
        expected = Rotation.from_rotvec(motion[0][0, 3 * joint : 3 * joint + 3])
        assert (blender_rotation(frame[f"{name}_rotation"]).inv() * expected).magnitude() < 1e-5
    x, y, z = unity_quat(frame["pelvis_position"])
    np.testing.assert_allclose([-x, y, z], motion[1][0], atol=1e-6)


def test_unknown_character_or_missing_files_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown character id 'Robin'"):
        Rig.load(DATA, "Robin")
    with pytest.raises(ValueError, match="needs the rig data directory"):
        Rig.load(None, "Chappie")
    with pytest.raises(ValueError, match=r"rig file not found: .*Chappie\.json"):
        Rig.load(tmp_path, "Chappie")
    (tmp_path / "bone_data").mkdir()
    (tmp_path / "retargetmap").mkdir()
    (tmp_path / "bone_data" / "Chappie.json").write_text(
        (DATA / "bone_data" / "Chappie.json").read_text()
    )
    with pytest.raises(ValueError, match=r"rig file not found: .*Smplx2Chappie\.bmap"):
        Rig.load(tmp_path, "Chappie")
    (tmp_path / "retargetmap" / "Smplx2Chappie.bmap").write_text(
        "NoSuchBone%False%ABSOLUTE%0,0,0%0,0,0%1.0%False%False%\npelvis\nFalse\nFalse\n"
    )
    with pytest.raises(ValueError, match="'NoSuchBone' is not in the Chappie rig"):
        Rig.load(tmp_path, "Chappie")
    (tmp_path / "bone_data" / "Chappie.json").write_text("{not json")
    with pytest.raises(ValueError, match="malformed bone data"):
        Rig.load(tmp_path, "Chappie")


def test_bmap_blocks(tmp_path):
    path = tmp_path / "Smplx2Test.bmap"
    tail = "%False%ABSOLUTE%0.0,0.0,0.0%0.0,0.0,0.0%1.0%False%False%"
    path.write_text(
        f"hips{tail}\npelvis\nFalse\nFalse\n\n"
        f"None{tail}\njaw\nFalse\nFalse\n\n"
        f"{tail}\nspine2\nFalse\nFalse\n\n"
        f"hand.r{tail}\nleft_wrist\nFalse\nFalse\n\n"
        f"hand.r{tail}\nright_wrist\nFalse\nFalse\n\n"
        f"chest{tail}\n"
    )
    assert read_bmap(path) == {"pelvis": "hips", "right_wrist": "hand.r", "chest": "chest"}


def test_batman_remap_drives_only_the_right_hand_fingers_it_names(rigs):
    """Smplx2Batman.bmap names the right-hand finger bones for both hands; the later wins."""
    rig = rigs["Batman"]
    assert "right_index1" in rig.source_joints and "left_index1" not in rig.source_joints
    assert dict(zip(rig.source_joints, rig.bone_names, strict=True))["right_index1"] == "index1.r"
