"""The motion library: authored clips do what their names say; retrieval with the real
all-MiniLM-L6-v2; fitting to durations and blending with idle; user clips."""

from __future__ import annotations

import numpy as np
import pytest

from services.motion import features
from services.motion.backends.retrieval import ClipIndex, Fitter
from services.motion.library import MotionLibrary, load_user_clips
from services.motion.skeleton import BUILT_IN, facing
from solami.avatar import rotations
from solami.avatar.rates import FPS
from solami.avatar.skeleton import JOINT_INDEX
from tests.support.motion_models import shared_embedder, smplx_ai

REQUIRED = (
    "idle",
    "wave",
    "nod",
    "head_shake",
    "bow",
    "clap",
    "shrug",
    "point",
    "thinking",
    "celebrate",
    "dance_step",
)


@pytest.fixture(scope="module")
def library() -> MotionLibrary:
    return MotionLibrary.load()


@pytest.fixture(scope="module")
def index(library) -> ClipIndex:
    return ClipIndex(library, shared_embedder())


def _joints(library: MotionLibrary, name: str) -> np.ndarray:
    return library.clips[name].motion.joints(BUILT_IN)


def _joint(joints: np.ndarray, name: str) -> np.ndarray:
    return joints[:, JOINT_INDEX[name]]


def test_every_clip_is_a_valid_standing_smplx_clip(library):
    assert set(REQUIRED) <= set(library.clips)
    for clip in library.clips.values():
        motion = clip.motion
        assert motion.poses.shape == (motion.n_frames, 165) and np.isfinite(motion.poses).all()
        assert 1.0 <= clip.duration_s <= 5.0 and len(clip.descriptions) >= 4
        assert np.allclose(motion.poses.reshape(-1, 55, 3)[:, 22:25], 0.0)
        joints = motion.joints(BUILT_IN)
        assert joints[..., 1].min() > -0.02, clip.name  # feet stay on the floor
        assert np.allclose(motion.trans[0, [0, 2]], 0.0, atol=0.02)
        step = rotations.geodesic_angle(motion.rotations()[1:], motion.rotations()[:-1])
        assert step.max() < np.radians(25), clip.name  # no jumps between frames (30 fps)


def test_gestures_start_and_end_in_the_relaxed_pose(library):
    idle = library.idle.motion.rotations()[0]
    for name in REQUIRED[1:-1]:
        rot = library.clips[name].motion.rotations()
        for frame in (rot[0], rot[-1]):
            assert rotations.geodesic_angle(frame, idle).max() < np.radians(3), name


def test_loops_close_on_themselves(library):
    for name in ("idle", "dance_step"):
        clip = library.clips[name]
        rot = clip.motion.rotations()
        assert clip.loop
        wrap = rotations.geodesic_angle(rot[-1], rot[0]).max()
        assert wrap < 2 * rotations.geodesic_angle(rot[1], rot[0]).max() + np.radians(1)


def test_clips_show_what_they_are_called(library):
    wave = _joints(library, "wave")
    hand_up = _joint(wave, "right_wrist")[:, 1] > _joint(wave, "head")[:, 1]
    assert hand_up.mean() > 0.5
    assert np.ptp(_joint(wave, "right_wrist")[hand_up, 0]) > 0.15  # waving side to side

    clap = _joints(library, "clap")
    gap = np.linalg.norm(_joint(clap, "left_wrist") - _joint(clap, "right_wrist"), axis=1)
    meets = np.flatnonzero((gap[1:-1] < gap[:-2]) & (gap[1:-1] <= gap[2:]) & (gap[1:-1] < 0.15))
    assert len(meets) >= 3

    bow = _joints(library, "bow")
    assert _joint(bow, "head")[:, 2].max() > 0.2 and _joint(bow, "head")[:, 1].min() < 1.4

    point = _joints(library, "point")
    tip = _joint(point, "right_index3")
    assert tip[:, 2].max() > 0.5 and tip[np.argmax(tip[:, 2]), 1] > 1.2

    thinking = _joints(library, "thinking")
    chin = np.linalg.norm(_joint(thinking, "right_index1") - _joint(thinking, "jaw"), axis=1)
    assert chin.min() < 0.12

    celebrate = _joints(library, "celebrate")
    for wrist in ("left_wrist", "right_wrist"):
        assert (_joint(celebrate, wrist)[:, 1] > _joint(celebrate, "head")[:, 1] + 0.2).any()

    shrug = _joints(library, "shrug")
    rise = _joint(shrug, "left_shoulder")[:, 1] - _joint(shrug, "left_shoulder")[0, 1]
    assert rise.max() > 0.02

    nod, shake = library.clips["nod"].motion, library.clips["head_shake"].motion
    head = JOINT_INDEX["head"]
    assert np.ptp(nod.poses.reshape(-1, 55, 3)[:, head, 0]) > np.radians(15)
    assert np.ptp(shake.poses.reshape(-1, 55, 3)[:, head, 1]) > np.radians(35)

    dance = _joints(library, "dance_step")
    assert np.ptp(dance[:, 0, 0]) > 0.2


@pytest.mark.parametrize(
    ("text", "clip"),
    [
        ("wave hello to me", "wave"),
        ("take a bow", "bow"),
        ("let me think about it", "thinking"),
        ("I agree", "nod"),
        ("look over there", "point"),
        ("dance with me", "dance_step"),
        ("give them a big round of applause", "clap"),
        ("we won, hooray!", "celebrate"),
    ],
)
def test_retrieval_finds_the_clip_a_phrase_describes(index, text, clip):
    match = index.search(text)
    assert match.clip.name == clip, match
    assert 0.3 < match.score <= 1.0 + 1e-6


def test_fitting_to_a_duration_starts_and_ends_in_idle(library):
    fitter = Fitter(library, blend_s=0.3)
    idle = library.idle.motion.rotations()
    for name, seconds in (("wave", 3.0), ("wave", 1.0), ("bow", 10.0), ("dance_step", 7.3)):
        motion = fitter.fit(library.clips[name], seconds)
        assert motion.n_frames == round(seconds * FPS)
        rot = motion.rotations()
        assert rotations.geodesic_angle(rot[0], idle[0]).max() < 1e-6
        assert np.allclose(motion.trans[0], library.idle.motion.trans[0])
        step = rotations.geodesic_angle(rot[1:], rot[:-1]).max()
        assert step < np.radians(25), name
    own = fitter.fit(library.clips["nod"])
    assert own.n_frames == library.clips["nod"].motion.n_frames


def test_time_warp_keeps_the_gesture_and_loops_repeat(library):
    fitter = Fitter(library, blend_s=0.3)
    slow = fitter.fit(library.clips["wave"], 3.2).joints(BUILT_IN)
    assert (_joint(slow, "right_wrist")[:, 1] > _joint(slow, "head")[:, 1]).any()
    dance = fitter.fit(library.clips["dance_step"], 6.0)
    x = dance.trans[:, 0]
    steps_right = np.flatnonzero((x[1:-1] < x[:-2]) & (x[1:-1] <= x[2:]) & (x[1:-1] < -0.08))
    assert len(steps_right) == 3  # a 2 s bar, three times


def test_user_clips_join_the_library(tmp_path):
    clip = smplx_ai()
    turned = features.apply_placement(clip, features.Placement(1.0, np.array([2.0, 0, -1.0])))
    np.savez(tmp_path / "solami_reply.npz", poses=turned.poses, trans=turned.trans)
    (tmp_path / "solami_reply.txt").write_text("gesture while explaining\ntalk with hands\n")
    library = MotionLibrary.load(tmp_path)
    user = library.clips["solami_reply"]
    assert user.descriptions == ("gesture while explaining", "talk with hands")
    assert np.allclose(user.motion.trans[0, [0, 2]], 0.0)
    assert np.allclose(facing(user.motion.joints(BUILT_IN)[0]), [0, 0, 1], atol=1e-6)
    (tmp_path / "broken.npz").write_bytes(b"not an npz")
    (tmp_path / "broken.txt").write_text("nothing\n")
    with pytest.raises(ValueError):
        load_user_clips(tmp_path)


def test_search_ignores_case_and_spacing(index):
    assert index.search("  TAKE   a Bow ").clip.name == "bow"
