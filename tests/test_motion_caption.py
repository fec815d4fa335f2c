"""CaptionMotion over a real in-process gRPC server: every authored clip, played faster or
slower, cut, noised, moved and turned, captions as itself; idle, a body standing still and a
too-short clip get no caption; bad input is refused; a built library captions from its own
clips (descriptors stored by the build, or computed at load for an older library); the real
headset capture; the relay's typed client and the CLI."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import grpc
import numpy as np
import pytest

from relay.clients.motion import MotionCaption, MotionClient
from relay.metrics import RelayMetrics
from services.motion import captioner, features
from services.motion.backends.base import Caption
from services.motion.captioner import AUTHORED_CAPTIONS, LibraryCaptioner, describe, describe_built
from services.motion.engine import MotionEngine
from services.motion.features import Motion
from services.motion.library import DESCRIPTORS, MANIFEST, BuiltLibrary, MotionLibrary
from services.motion.library_build import build
from services.motion.server import DEFINITION
from services.motion.settings import MotionSettings
from solami.avatar.rates import FPS
from solami.client import sync_channel
from solami.v1 import common_pb2, motion_pb2, motion_pb2_grpc
from tests.support.motion_models import MOTION_AI, shared_embedder, smplx_ai
from tests.support.motion_perturb import moved, noised, sub_window, time_warp
from tests.support.servers import InProcessServer, finish, spawn

LIBRARY = MotionLibrary.load()
GESTURES = [name for name in LIBRARY.clips if name != "idle"]
SEED = 7
# Perturbations of the tests (noise: tests/support/motion_perturb.py): playback speeds, the
# part of a clip kept.
SPEEDS = (0.75, 1.35)
WINDOW = 0.7


def _settings(**overrides) -> MotionSettings:
    return dataclasses.replace(
        MotionSettings(), host="127.0.0.1", port=0, metrics_port=-1, **overrides
    )


@pytest.fixture(scope="module")
def server():
    settings = _settings()
    running = InProcessServer(DEFINITION, settings, MotionEngine(settings, shared_embedder()))
    yield running.start()
    running.stop()


@pytest.fixture(scope="module")
def stub(server):
    with sync_channel(server.address) as channel:
        yield motion_pb2_grpc.MotionServiceStub(channel)


def _frames(motion: Motion, up_axis=motion_pb2.UP_AXIS_Y) -> motion_pb2.SmplxFrames:
    return motion_pb2.SmplxFrames(
        n_frames=motion.n_frames,
        poses=np.asarray(motion.poses).ravel().tolist(),
        trans=np.asarray(motion.trans).ravel().tolist(),
        up_axis=up_axis,
    )


def _caption(stub, motion: Motion, up_axis=motion_pb2.UP_AXIS_Y):
    turn = common_pb2.TurnContext(session_id="test", turn_id="c1")
    request = motion_pb2.CaptionMotionRequest(turn=turn, user=_frames(motion, up_axis))
    reply = stub.CaptionMotion(request, timeout=30)
    assert reply.turn.turn_id == "c1" and 0.0 <= reply.score <= 1.0
    return reply


def versions(motion: Motion, rng: np.random.Generator) -> dict[str, Motion]:
    """The clip and perturbed versions of it."""
    out = {"as authored": motion}
    out.update({f"{speed}x": time_warp(motion, speed) for speed in SPEEDS})
    out["noised"] = noised(motion, rng)
    out["sub-window"] = sub_window(motion, WINDOW, rng)
    out["moved"] = moved(motion, rng)
    speed = float(rng.uniform(*SPEEDS))
    out["all at once"] = moved(noised(sub_window(time_warp(motion, speed), 0.8, rng), rng), rng)
    return out


@pytest.mark.parametrize("name", GESTURES)
def test_each_authored_clip_captions_as_itself(stub, name):
    rng = np.random.default_rng([SEED, GESTURES.index(name)])
    for label, motion in versions(LIBRARY.clips[name].motion, rng).items():
        reply = _caption(stub, motion)
        assert reply.source == f"library:{name}", f"{label}: {reply}"
        assert reply.caption == AUTHORED_CAPTIONS[name] and reply.score >= 0.5, label
        assert reply.processing_ms < 1000


def test_z_up_input_is_converted(stub):
    wave = features.convert_up_axis(LIBRARY.clips["wave"].motion)
    assert _caption(stub, wave, motion_pb2.UP_AXIS_Z).source == "library:wave"


def _held(pose: np.ndarray, seconds: float = 2.0) -> Motion:
    n = round(seconds * FPS)
    return Motion(np.tile(pose, (n, 1)), np.tile([0.0, 0.93, 0.0], (n, 1)))


def test_idle_and_standing_still_say_nothing(stub):
    rng = np.random.default_rng(SEED)
    idle = LIBRARY.idle.motion
    relaxed = _held(idle.poses[0])
    t_pose = _held(np.zeros(165))
    for label, motion in {
        "idle": idle,
        "idle, noised": noised(idle, rng),
        "idle, moved, slower": moved(time_warp(idle, 0.75), rng),
        "relaxed pose held": relaxed,
        "relaxed pose held, jitter": noised(relaxed, rng),
        "T-pose held": t_pose,
        "T-pose held, jitter": noised(t_pose, rng),
    }.items():
        reply = _caption(stub, motion)
        assert reply.caption == "", f"{label}: {reply}"
    assert _caption(stub, t_pose).source == "still"
    assert _caption(stub, noised(t_pose, rng)).source == "library:rest_pose"


def test_a_clip_unlike_every_library_clip_is_not_forced_onto_one(stub):
    reply = _caption(stub, smplx_ai())
    assert reply.caption == "" and reply.score < 0.5 and reply.source.startswith("library:")


@pytest.mark.parametrize("frames", [0, 1, captioner.MIN_CAPTION_FRAMES - 1])
def test_too_short_gives_no_caption_and_score_zero(stub, frames):
    wave = LIBRARY.clips["wave"].motion
    reply = _caption(stub, Motion(wave.poses[:frames], wave.trans[:frames]))
    assert reply.caption == "" and reply.score == 0.0


@pytest.mark.parametrize(
    "frames, message",
    [
        (motion_pb2.SmplxFrames(n_frames=30, poses=[np.nan] * 30 * 165, trans=[0.0] * 90), "NaN"),
        (motion_pb2.SmplxFrames(n_frames=30, poses=[0.0] * 100, trans=[0.0] * 90), "poses has"),
        (motion_pb2.SmplxFrames(n_frames=30, poses=[0.0] * 30 * 165, trans=[1e4] * 90), "metres"),
    ],
)
def test_malformed_motion_is_invalid_argument(stub, frames, message):
    with pytest.raises(grpc.RpcError) as caught:
        stub.CaptionMotion(motion_pb2.CaptionMotionRequest(user=frames), timeout=30)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in caught.value.details()


def test_the_floor_is_a_setting():
    wave = time_warp(LIBRARY.clips["wave"].motion, 1.3)
    engine = MotionEngine(_settings(caption_floor=0.999), shared_embedder())
    engine.load()
    caption = engine.caption(wave)
    assert caption.text == "" and 0.0 < caption.score < 0.999 and caption.source == "library:wave"


def test_text_to_motion_asked_to_generate_answers_from_retrieval(stub):
    request = motion_pb2.TextToMotionRequest(text="wave hello", duration_s=2.0, generate=True)
    events = list(stub.TextToMotion(request, timeout=30))
    assert events[0].header.source == "wave" and events[-1].end.total_frames == 60


def test_the_real_headset_capture(stub, capsys):
    with np.load(MOTION_AI) as data:
        user = Motion(data["poses_user"], data["trans_user"])
    reply = _caption(stub, user, motion_pb2.UP_AXIS_Z)
    with capsys.disabled():
        print(
            f"\nmotion_ai.npz ({user.n_frames} frames): caption {reply.caption!r}, "
            f"score {reply.score:.3f}, source {reply.source!r}"
        )
    assert reply.caption == "" or reply.score >= 0.5


BUILT_TEXTS = {
    "wave": "a person waves hello with the right hand",
    "bow": "someone bows deeply",
    "clap": "a man claps his hands",
    "dance_step": "a person dances from side to side",
    "celebrate": "a person cheers with both arms up",
}


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    data = tmp_path_factory.mktemp("caption-dataset")
    rng = np.random.default_rng(SEED)
    for name, text in BUILT_TEXTS.items():
        clip = moved(LIBRARY.clips[name].motion, rng)
        np.savez(data / f"{name}.npz", poses=clip.poses, trans=clip.trans)
        (data / f"{name}.txt").write_text(text + "\n")
    out = tmp_path_factory.mktemp("caption-library")
    assert build(data, out, shared_embedder()).clips == len(BUILT_TEXTS)
    return out


def test_a_built_library_stores_descriptors_and_captions_from_its_clips(built):
    library = BuiltLibrary.open(built)
    assert library.descriptor == captioner.DESCRIPTOR
    np.testing.assert_allclose(library.descriptors, describe_built(library), atol=1e-5)
    settings = _settings(library_dir=built)
    running = InProcessServer(DEFINITION, settings, MotionEngine(settings, shared_embedder()))
    running.start()
    try:
        with sync_channel(running.address) as channel:
            stub = motion_pb2_grpc.MotionServiceStub(channel)
            rng = np.random.default_rng(SEED)
            for name, text in BUILT_TEXTS.items():
                user = moved(noised(time_warp(LIBRARY.clips[name].motion, 1.2), rng), rng)
                reply = _caption(stub, user)
                assert (reply.caption, reply.source) == (text, f"library:{name}")
            assert _caption(stub, LIBRARY.idle.motion).caption == ""
    finally:
        running.stop()


def test_an_older_built_library_without_descriptors_computes_them(built, tmp_path):
    old = Path(shutil.copytree(built, tmp_path / "old"))
    (old / DESCRIPTORS).unlink()
    manifest = json.loads((old / MANIFEST).read_text())
    del manifest["descriptor"], manifest["descriptor_dims"]
    (old / MANIFEST).write_text(json.dumps(manifest))
    library = BuiltLibrary.open(old)
    assert library.descriptors is None
    engine = MotionEngine(_settings(library_dir=old), shared_embedder())
    engine.load()
    assert engine.text_to_motion("wave", 1.0).name == "wave"
    caption = engine.caption(time_warp(LIBRARY.clips["clap"].motion, 0.8))
    assert caption.text == BUILT_TEXTS["clap"]


def test_descriptor_ignores_place_and_heading():
    rng = np.random.default_rng(SEED)
    bow = LIBRARY.clips["bow"].motion
    np.testing.assert_allclose(describe(moved(bow, rng)), describe(bow), atol=1e-3)
    assert describe(bow).shape == (captioner.DESCRIPTOR_DIMS,)


def test_library_captioner_refuses_mismatched_inputs():
    with pytest.raises(ValueError, match="one descriptor"):
        LibraryCaptioner(np.zeros((2, captioner.DESCRIPTOR_DIMS)), ["a"], ["a person"])


async def test_relay_client_caption(server):
    wave = LIBRARY.clips["wave"].motion
    async with grpc.aio.insecure_channel(server.address) as channel:
        client = MotionClient(motion_pb2_grpc.MotionServiceStub(channel), 30.0, RelayMetrics())
        turn = common_pb2.TurnContext(session_id="s", turn_id="t")
        caption = await client.caption(turn, (wave.poses, wave.trans))
        short = await client.caption(turn, (wave.poses[:1], wave.trans[:1]))
    assert caption == MotionCaption(AUTHORED_CAPTIONS["wave"], caption.score, "library:wave")
    assert caption.score > 0.9 and short == MotionCaption("", 0.0, "")


def test_cli_caption(server):
    env = {"SOLAMI_MOTION_ADDR": server.address}
    process = spawn(
        ["-m", "solami_cli", "call", "motion", "caption", str(MOTION_AI), "--z-up"], env
    )
    stdout, stderr = finish(process, 120)
    assert process.returncode == 0, stderr
    result = json.loads(stdout)
    assert result["frames"] == 27 and set(result) >= {"caption", "score", "source"}


class FakeGenerator:
    """Stands in for MotionGPT (its weights cannot exist here): captions everything alike and
    makes a motion only for texts that mention dancing."""

    def caption(self, motion: Motion) -> Caption:
        return Caption("a person moves", 0.9, "motiongpt")

    def generate(self, text: str, seconds: float) -> Motion | None:
        return LIBRARY.clips["dance_step"].motion if "dance" in text else None


def test_a_generator_takes_over_captions_and_asked_for_generation():
    engine = MotionEngine(_settings(), shared_embedder())
    engine.load()
    engine.generator = FakeGenerator()
    wave = LIBRARY.clips["wave"].motion
    assert engine.caption(wave) == Caption("a person moves", 0.9, "motiongpt")
    assert engine.caption(Motion(wave.poses[:1], wave.trans[:1])) == Caption("", 0.0, "")
    assert engine.text_to_motion("dance", 0.0, generate=True).name == "motiongpt"
    assert engine.text_to_motion("dance", 0.0).name == "dance_step"
    assert engine.text_to_motion("wave hello", 0.0, generate=True).name == "wave"
