"""Motion geometry on real SOLAMI clips: rotations, skeleton, features and their inverse,
Z-up <-> Y-up, the relative transform."""

from __future__ import annotations

import numpy as np
import pytest

from services.motion import features
from services.motion.features import Motion
from services.motion.skeleton import BUILT_IN, facing, load_smplx_skeleton
from solami.avatar import rotations
from solami.avatar.features import BODY_FEATURE_DIMS, FEATURE_DIMS, TRANSFORM_DIMS
from solami.avatar.skeleton import JOINT_INDEX, NUM_JOINTS, PARENTS, POSE_DIMS
from solami.errors import EngineUnavailable
from tests.support.motion_models import relay_user_and_character, smplx_ai

ROTATION_TOL_RAD = 1e-4
TRANS_TOL_M = 1e-3


def _rotation_error(a: Motion, b: Motion) -> float:
    return float(rotations.geodesic_angle(a.rotations(), b.rotations()).max())


def test_rotation_conversions_round_trip_including_half_turns():
    rng = np.random.default_rng(0)
    aa = rng.normal(size=(500, 3)) * 1.5
    aa[:4] = [[np.pi, 0, 0], [0, np.pi - 1e-9, 0], [0, 0, 0], [1e-9, 0, 0]]
    m = rotations.axis_angle_to_matrix(aa)
    assert np.allclose(m @ np.swapaxes(m, -1, -2), np.eye(3), atol=1e-12)
    assert np.allclose(np.linalg.det(m), 1.0)
    back = rotations.axis_angle_to_matrix(rotations.matrix_to_axis_angle(m))
    assert np.abs(back - m).max() < 1e-9
    assert np.abs(rotations.six_d_to_matrix(rotations.matrix_to_6d(m)) - m).max() < 1e-12
    q = rotations.matrix_to_quat(m)
    assert np.abs(rotations.quat_to_matrix(q) - m).max() < 1e-9
    half = rotations.slerp(q[:10], q[10:20], np.full(10, 0.5))
    angles = rotations.geodesic_angle(rotations.quat_to_matrix(half), m[:10])
    assert np.allclose(angles, rotations.geodesic_angle(m[:10], m[10:20]) / 2, atol=1e-9)


def test_heading_is_the_yaw_of_a_turned_body():
    for yaw in (-2.5, -0.4, 0.0, 1.2, 3.0):
        tilt = rotations.axis_angle_to_matrix(np.array([0.2, 0.0, 0.0])) @ (
            rotations.axis_angle_to_matrix(np.array([0.0, 0.0, 0.1]))
        )
        assert rotations.heading(tilt @ rotations.rotation_y(yaw)) == pytest.approx(yaw, abs=1e-9)


def test_built_in_skeleton_is_an_adult_facing_plus_z():
    rest = BUILT_IN.rest
    assert rest.shape == (NUM_JOINTS, 3) and len(PARENTS) == NUM_JOINTS
    assert np.allclose(rest[0], 0.0)
    height = rest[JOINT_INDEX["head"], 1] + 0.12 + BUILT_IN.floor_to_pelvis_m
    assert 1.55 < height < 1.85
    assert rest[JOINT_INDEX["left_wrist"], 0] > 0.5 > -0.5 > rest[JOINT_INDEX["right_wrist"], 0]
    joints = BUILT_IN.forward(np.broadcast_to(np.eye(3), (NUM_JOINTS, 3, 3)), np.zeros(3))
    assert np.allclose(joints, rest)
    assert np.allclose(facing(joints), [0.0, 0.0, 1.0])


def test_smplx_model_file_gives_its_regressed_joints(tmp_path):
    # An SMPL-X-format file whose "mesh" is one vertex per joint, regressed by the identity.
    template = BUILT_IN.rest * 1.1 + [0.0, 0.3, 0.0]
    tree = np.array([[2**32 - 1, *PARENTS[1:]], list(range(NUM_JOINTS))], dtype=np.uint32)
    path = tmp_path / "SMPLX_TEST.npz"
    np.savez(path, v_template=template, J_regressor=np.eye(NUM_JOINTS), kintree_table=tree)
    skeleton = load_smplx_skeleton(path)
    assert np.allclose(skeleton.rest, BUILT_IN.rest * 1.1)
    np.savez(tmp_path / "bad.npz", v_template=template)
    with pytest.raises(EngineUnavailable, match="not an SMPL-X model"):
        load_smplx_skeleton(tmp_path / "bad.npz")


def test_features_and_inverse_round_trip_on_real_motion():
    clip = smplx_ai()
    feats, placement = features.features_of(clip, BUILT_IN)
    assert feats.shape == (clip.n_frames - 1, FEATURE_DIMS)
    assert np.isfinite(feats).all()
    canonical, _ = features.from_features(feats)
    assert np.allclose(canonical.trans[0, [0, 2]], 0.0)
    restored = features.undo_placement(canonical, placement)
    head = Motion(clip.poses[:-1], clip.trans[:-1])
    assert _rotation_error(restored, head) < ROTATION_TOL_RAD
    assert np.abs(restored.trans - head.trans).max() < TRANS_TOL_M
    assert np.allclose(restored.poses.reshape(-1, 55, 3)[:, 22:25], 0.0)


def test_features_split_into_body_and_hand_parts():
    feats, _ = features.features_of(smplx_ai(), BUILT_IN)
    body, hand = feats[:, :BODY_FEATURE_DIMS], feats[:, BODY_FEATURE_DIMS:]
    assert body.shape[1] == 135 and hand.shape[1] == 180
    # Root height of a standing adult and 6D columns of unit length.
    assert 0.8 < body[:, 2].mean() < 1.1
    columns = feats[:, 3:].reshape(len(feats), -1, 3)
    assert np.allclose(np.linalg.norm(columns, axis=-1), 1.0, atol=1e-9)


def test_chunked_inverse_continues_the_trajectory():
    feats, _ = features.features_of(smplx_ai(), BUILT_IN)
    whole, _ = features.from_features(feats)
    first, end_xz = features.from_features(feats[:100])
    second, _ = features.from_features(feats[100:], end_xz)
    assert np.allclose(np.concatenate([first.trans, second.trans]), whole.trans, atol=1e-9)


def test_placement_turns_any_heading_to_plus_z_at_the_origin():
    clip = smplx_ai()
    for yaw in (-2.0, 0.7, 3.1):
        turned = features.apply_placement(clip, features.Placement(yaw, np.array([-3, 0, 5.0])))
        placement = features.placement_of(turned, BUILT_IN)
        canonical = features.apply_placement(turned, placement)
        forward = facing(canonical.joints(BUILT_IN)[0])
        assert np.allclose(forward, [0, 0, 1], atol=1e-9)
        assert np.allclose(canonical.trans[0, [0, 2]], 0.0, atol=1e-9)
        assert canonical.joints(BUILT_IN)[..., 1].min() == pytest.approx(0.0, abs=1e-9)
        feats = features.to_features(canonical)
        reference, _ = features.features_of(clip, BUILT_IN)
        assert np.abs(feats - reference).max() < 1e-6


def test_z_up_conversion_of_a_clip_with_known_up_and_facing():
    # A rest-pose person in a Z-up world: standing along +Z, facing -Y, walking 1 m along -Y.
    n = 31
    zup_orient = rotations.matrix_to_axis_angle(  # Rx(+90 degrees), as the original relay
        np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
    )
    poses = np.zeros((n, POSE_DIMS))
    poses[:, :3] = zup_orient
    trans = np.stack([np.zeros(n), -np.linspace(0, 1, n), np.full(n, 0.93)], axis=1)
    zup = Motion(poses, trans)
    joints_zup = zup.joints(BUILT_IN)
    head_up = joints_zup[0, JOINT_INDEX["head"]] - joints_zup[0, 0]
    assert head_up[2] > 0.5  # the body's up is world +Z
    yup = features.convert_up_axis(zup)
    joints = yup.joints(BUILT_IN)
    assert (joints[0, JOINT_INDEX["head"]] - joints[0, 0])[1] > 0.5  # now +Y
    assert np.allclose(yup.trans[0], [0.0, 0.93, 0.0])
    assert np.allclose(yup.trans[-1], [0.0, 0.93, -1.0])  # -Y (Z-up) is -Z (Y-up)
    assert np.allclose(facing(joints[0]), [0.0, 0.0, -1.0], atol=1e-9)
    feats, _ = features.features_of(yup, BUILT_IN)
    assert np.allclose(feats[:, 0:2], [[0.0, 1.0 / (n - 1)]], atol=1e-9)  # forward, m/frame
    back = features.convert_up_axis(yup)
    assert _rotation_error(back, zup) < 1e-9 and np.allclose(back.trans, zup.trans)


def test_relative_transform_of_the_relay_recording():
    # The original relay's Z-up copy: the user and the character face each other 1.3 m apart.
    user, character = (features.convert_up_axis(m) for m in relay_user_and_character())
    relative = features.relative_transform(user, character, BUILT_IN)
    assert relative.shape == (TRANSFORM_DIMS,)
    assert relative[0] == pytest.approx(-1.0, abs=0.05)  # turned by about 180 degrees
    distance = np.hypot(relative[2], relative[4])
    assert distance == pytest.approx(1.31, abs=0.05)
    assert relative[4] > 1.2  # the user is in front of the character
    swapped = features.relative_transform(character, user, BUILT_IN)
    assert np.hypot(swapped[2], swapped[4]) == pytest.approx(distance, abs=1e-9)
