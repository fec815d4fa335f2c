"""Headset body streams <-> Y-up SMPL-X: round trips, facing and up axis, malformed entries."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from relay.quest.coords import (
    USER_TRIM_HEAD_FRAMES,
    USER_TRIM_TAIL_FRAMES,
    pose_snapshot_to_smplx,
    smplx_to_pose_snapshot,
    smplx_to_unity_user_frames,
    trim_user_motion,
    unity_world_to_yup,
    user_frames_to_smplx,
    yup_to_unity_world,
)
from relay.quest.fields import format_rows
from relay.quest.rig import Rig
from solami.avatar.rotations import axis_angle_to_matrix, matrix_to_quat
from solami.avatar.skeleton import JOINT_NAMES, PARENTS, global_rotations, local_rotations

DATA = Path(__file__).resolve().parents[2] / "shared" / "solami-data"
needs_data = pytest.mark.skipif(
    not DATA.is_dir(), reason=f"SOLAMI data folder {DATA} (../shared/solami-data) is missing"
)

STANDING_HEIGHT_M = 0.9


def matrices(poses: np.ndarray) -> np.ndarray:
    return Rotation.from_rotvec(np.asarray(poses, np.float64).reshape(-1, 3)).as_matrix()


def body_axes(poses: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """World up (+Y) and forward (+Z) axes of the SMPL-X body frame for each frame."""
    orient = Rotation.from_rotvec(np.asarray(poses, np.float64)[:, :3])
    return orient.apply([0.0, 1.0, 0.0]), orient.apply([0.0, 0.0, 1.0])


def identity_user_entry(position: tuple[float, float, float]) -> dict[str, str]:
    """A user rig at its rest pose (every localRotation the identity) at a Unity position."""
    entry = {f"{name}_rotation": "0,0,0,1" for name in JOINT_NAMES}
    entry["pelvis_position"] = ",".join(map(str, position))
    return entry


@pytest.fixture(scope="module")
def clip() -> tuple[np.ndarray, np.ndarray]:
    if not DATA.is_dir():
        pytest.skip(f"SOLAMI data folder {DATA} is missing")
    data = np.load(DATA / "anim_data" / "Smplx_ai.npz")
    return data["poses"].astype(np.float64), data["trans"].astype(np.float64)


@needs_data
def test_round_trip_through_unity_user_frames(clip):
    poses, trans = clip
    entries = smplx_to_unity_user_frames(poses, trans)
    assert len(entries) == len(poses)
    assert set(entries[0]) == {f"{n}_rotation" for n in JOINT_NAMES} | {"pelvis_position"}
    back_poses, back_trans = user_frames_to_smplx(entries)
    assert back_poses.shape == poses.shape and back_trans.shape == trans.shape
    np.testing.assert_allclose(matrices(back_poses), matrices(poses), atol=1e-5)
    np.testing.assert_allclose(back_trans, trans, atol=1e-5)


@needs_data
def test_redis_bytes_entries_read_like_str(clip):
    poses, trans = clip[0][:5], clip[1][:5]
    entries = smplx_to_unity_user_frames(poses, trans)
    raw = [{k.encode(): v.encode() for k, v in entry.items()} for entry in entries]
    mixed = [{k.encode(): v for k, v in entry.items()} for entry in entries]
    expected = user_frames_to_smplx(entries)
    for variant in (raw, mixed):
        got = user_frames_to_smplx(variant)
        np.testing.assert_array_equal(got[0], expected[0])
        np.testing.assert_array_equal(got[1], expected[1])


@needs_data
def test_matches_the_documented_chain(clip):
    """Unity -> Z-up as the original relay did it, then Z-up -> Y-up with C."""
    poses, trans = clip[0][:20], clip[1][:20]
    entries = smplx_to_unity_user_frames(poses, trans)
    c = np.array([[-1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
    rx90 = Rotation.from_quat([np.sqrt(0.5), np.sqrt(0.5), 0.0, 0.0], scalar_first=True)
    got_poses, got_trans = user_frames_to_smplx(entries)
    for index, entry in enumerate(entries):
        x, y, z = (float(v) for v in entry["pelvis_position"].split(","))
        np.testing.assert_allclose(got_trans[index], c @ [-x, -z, y], atol=1e-6)
        for joint, name in enumerate(JOINT_NAMES):
            qx, qy, qz, qw = (float(v) for v in entry[f"{name}_rotation"].split(","))
            zup = Rotation.from_quat([qw, qx, -qy, -qz], scalar_first=True)
            if joint == 0:
                zup = rx90 * zup
                expected = c @ zup.as_matrix()
            else:
                expected = zup.as_matrix()
            got = Rotation.from_rotvec(got_poses[index, 3 * joint : 3 * joint + 3]).as_matrix()
            np.testing.assert_allclose(got, expected, atol=1e-5)


def test_user_at_rest_facing_the_character_is_upright_in_y_up():
    """A user rig at rest at the Unity origin, facing Unity +Z (towards the character)."""
    poses, trans = user_frames_to_smplx([identity_user_entry((0.0, STANDING_HEIGHT_M, 0.0))])
    up, forward = body_axes(poses)
    np.testing.assert_allclose(up[0], [0.0, 1.0, 0.0], atol=1e-6)
    np.testing.assert_allclose(forward[0], [0.0, 0.0, -1.0], atol=1e-6)  # facing the character
    np.testing.assert_allclose(trans[0], [0.0, STANDING_HEIGHT_M, 0.0], atol=1e-6)
    np.testing.assert_allclose(poses[0, 3:], 0.0, atol=1e-6)  # body joints stay at rest


def test_world_positions_keep_x_and_y_and_flip_z():
    points = np.random.default_rng(1).normal(size=(5, 3))
    np.testing.assert_allclose(unity_world_to_yup(points), points * [1.0, 1.0, -1.0])
    np.testing.assert_allclose(yup_to_unity_world(unity_world_to_yup(points)), points)


def test_character_snapshot_root_is_a_world_position_like_the_users_pelvis():
    """``aifbStream`` gives the root's Unity world position: read like the user's pelvis."""
    rig = Rig.load(None, "Smplx")
    entry = rig.rest_frame()
    entry["pelvis_position"] = "0.25,0.97,1.36"
    _, trans = pose_snapshot_to_smplx(entry, rig)
    user_entry = identity_user_entry((0.25, 0.97, 1.36))
    _, user_trans = user_frames_to_smplx([user_entry])
    np.testing.assert_allclose(trans, user_trans, atol=1e-6)
    again = smplx_to_pose_snapshot(*pose_snapshot_to_smplx(entry, rig), rig)
    assert again["pelvis_position"] == "0.250000,0.970000,1.360000"
    with pytest.raises(ValueError, match="one frame"):
        smplx_to_pose_snapshot(np.zeros((2, 165)), np.zeros((2, 3)), rig)
    del entry["pelvis_position"]
    with pytest.raises(ValueError, match="Smplx pose entry 0: missing field 'pelvis_position'"):
        pose_snapshot_to_smplx(entry, rig)


def test_user_walking_forward_moves_along_the_body_forward_axis():
    steps = np.linspace(0.0, 1.5, 30)
    entries = [identity_user_entry((0.0, STANDING_HEIGHT_M, z)) for z in steps]
    poses, trans = user_frames_to_smplx(entries)
    up, forward = body_axes(poses)
    displacement = trans[-1] - trans[0]
    np.testing.assert_allclose(trans[:, 1], STANDING_HEIGHT_M, atol=1e-6)
    assert np.dot(displacement, forward[0]) == pytest.approx(1.5, abs=1e-5)
    np.testing.assert_allclose(up, np.tile([0.0, 1.0, 0.0], (30, 1)), atol=1e-6)


def test_y_up_clip_facing_and_walking_plus_z_in_unity():
    """A Y-up T-pose at the origin facing +Z, walking forward along +Z."""
    count = 30
    poses = np.zeros((count, 165))
    trans = np.stack(
        [np.zeros(count), np.full(count, STANDING_HEIGHT_M), np.linspace(0.0, 1.0, count)], axis=1
    )
    entries = smplx_to_unity_user_frames(poses, trans)
    positions = np.array([[float(v) for v in e["pelvis_position"].split(",")] for e in entries])
    np.testing.assert_allclose(positions[:, :2], [[0.0, STANDING_HEIGHT_M]] * count, atol=1e-6)
    assert np.all(np.diff(positions[:, 2]) < 0)  # Unity -Z: towards the headset user
    pelvis = [float(v) for v in entries[0]["pelvis_rotation"].split(",")]
    # A half turn about Unity's up axis (either sign of the quaternion).
    assert abs(pelvis[1]) == pytest.approx(1.0, abs=1e-6)
    assert all(
        entries[0][f"{name}_rotation"] == "0.000000,0.000000,0.000000,1.000000"
        for name in JOINT_NAMES[1:]
    )
    back, back_trans = user_frames_to_smplx(entries)
    np.testing.assert_allclose(matrices(back), matrices(poses), atol=1e-6)
    np.testing.assert_allclose(back_trans, trans, atol=1e-6)


@needs_data
def test_real_clip_stays_upright(clip):
    poses, trans = clip
    up, _ = body_axes(poses)
    assert np.all(up[:, 1] > 0.8)
    assert np.all((trans[:, 1] > 0.7) & (trans[:, 1] < 1.1))
    round_up, _ = body_axes(user_frames_to_smplx(smplx_to_unity_user_frames(poses, trans))[0])
    np.testing.assert_allclose(round_up, up, atol=1e-5)


def test_missing_joints_are_at_rest_and_unknown_fields_ignored():
    entry = {
        "pelvis_rotation": "0,0,0,1",
        "pelvis_position": "0,0.9,0",
        "left_knee_rotation": "0,0,0,2",  # not unit: normalised
        "Some_Unity_Bone_rotation": "not read",
        "jawOpen": "0.5",
    }
    poses, _ = user_frames_to_smplx([entry])
    np.testing.assert_allclose(poses[0, 3:], 0.0, atol=1e-7)


def test_no_entries_give_an_empty_clip():
    poses, trans = user_frames_to_smplx([])
    assert poses.shape == (0, 165) and trans.shape == (0, 3)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("pelvis_position", None, "missing field 'pelvis_position'"),
        ("pelvis_rotation", None, "missing field 'pelvis_rotation'"),
        ("pelvis_position", "0,0.9", "'pelvis_position' must hold 3"),
        ("left_elbow_rotation", "0,0,1", "'left_elbow_rotation' must hold 4"),
        ("left_elbow_rotation", "0,0,a,1", "'left_elbow_rotation' must hold numbers"),
        ("left_elbow_rotation", "0,0,0,", "'left_elbow_rotation' must hold numbers"),
        ("head_rotation", "nan,0,0,1", "'head_rotation' must hold finite"),
        ("head_rotation", "0,0,0,0", "'head_rotation' is a zero quaternion"),
        ("pelvis_position", b"\xff\xfe", "'pelvis_position' is not UTF-8"),
    ],
)
def test_malformed_user_entry_names_the_field(field, value, message):
    good = identity_user_entry((0.0, STANDING_HEIGHT_M, 0.0))
    bad = dict(good)
    if value is None:
        del bad[field]
    else:
        bad[field] = value
    with pytest.raises(ValueError, match="userStream entry 2: .*" + message.replace("(", r"\(")):
        user_frames_to_smplx([good, good, bad, good])


def test_entry_that_is_not_a_mapping_is_rejected():
    with pytest.raises(ValueError, match="userStream entry 0: a stream entry must be a mapping"):
        user_frames_to_smplx([["pelvis_position", "0,0,0"]])


def test_trim_user_motion_drops_head_and_tail():
    poses = np.arange(100)[:, None] * np.ones((1, 165))
    trans = np.arange(100)[:, None] * np.ones((1, 3))
    trimmed, trimmed_trans = trim_user_motion(poses, trans)
    assert len(trimmed) == 100 - USER_TRIM_HEAD_FRAMES - USER_TRIM_TAIL_FRAMES
    assert trimmed[0, 0] == USER_TRIM_HEAD_FRAMES and trimmed[-1, 0] == 99 - USER_TRIM_TAIL_FRAMES
    np.testing.assert_array_equal(trimmed_trans[:, 0], trimmed[:, 0])
    short = trim_user_motion(poses[:45], trans[:45])
    assert len(short[0]) == 45
    assert len(trim_user_motion(poses[:46], trans[:46])[0]) == 1
    with pytest.raises(ValueError, match="differ in length"):
        trim_user_motion(poses, trans[:10])


def test_format_rows_matches_fixed_decimals():
    rng = np.random.default_rng(7)
    values = np.concatenate(
        [rng.uniform(-1, 1, (200, 4)), rng.uniform(-5000, 5000, (200, 4)), [[0, -0.0, -4e-7, 1]]]
    )
    expected = [",".join(f"{v:.6f}" for v in np.round(row, 6) + 0.0) for row in values]
    assert format_rows(values) == expected
    assert format_rows(np.array([[0.25, -0.125]]), decimals=2) == ["0.25,-0.12"]


def test_skeleton_kinematics_round_trip():
    rng = np.random.default_rng(3)
    local = axis_angle_to_matrix(rng.normal(scale=0.5, size=(4, 55, 3)))
    np.testing.assert_allclose(local_rotations(global_rotations(local)), local, atol=1e-12)
    assert all(parent < index for index, parent in enumerate(PARENTS))
    quats = matrix_to_quat(local)
    assert np.all(quats[..., 3] >= 0)
    np.testing.assert_allclose(np.linalg.norm(quats, axis=-1), 1.0, atol=1e-12)
