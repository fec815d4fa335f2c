"""The motion service over a real in-process gRPC server: tokenizers loaded from a checkpoint
directory the test writes, the real library and all-MiniLM-L6-v2; bad input; the CLI; a real
`solami serve motion` process."""

from __future__ import annotations

import dataclasses
import json
import signal

import grpc
import numpy as np
import pytest

from services.motion import features
from services.motion.engine import MotionEngine
from services.motion.server import DEFINITION
from services.motion.settings import MotionSettings
from solami.client import check_health, sync_channel
from solami.v1 import common_pb2, motion_pb2, motion_pb2_grpc
from tests.support.motion_models import (
    SMPLX_AI,
    relay_user_and_character,
    shared_embedder,
    smplx_ai,
    write_tiny_checkpoint,
)
from tests.support.servers import InProcessServer, finish, free_port, spawn, wait_for_health

MAX_CLIP_S = 20.0
MAX_TOKENS = 64


def _settings(**overrides) -> MotionSettings:
    return dataclasses.replace(
        MotionSettings(),
        host="127.0.0.1",
        port=0,
        metrics_port=-1,
        max_clip_s=MAX_CLIP_S,
        max_decode_tokens=MAX_TOKENS,
        **overrides,
    )


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return write_tiny_checkpoint(tmp_path_factory.mktemp("motion-checkpoint"))


@pytest.fixture(scope="module")
def server(checkpoint):
    settings = _settings(checkpoint_dir=checkpoint)
    running = InProcessServer(DEFINITION, settings, MotionEngine(settings, shared_embedder()))
    yield running.start()
    running.stop()


@pytest.fixture(scope="module")
def stub(server):
    with sync_channel(server.address) as channel:
        yield motion_pb2_grpc.MotionServiceStub(channel)


def _turn(turn_id: str = "t1") -> common_pb2.TurnContext:
    return common_pb2.TurnContext(session_id="test", turn_id=turn_id)


def _frames(motion: features.Motion, up_axis=motion_pb2.UP_AXIS_Y) -> motion_pb2.SmplxFrames:
    return motion_pb2.SmplxFrames(
        n_frames=motion.n_frames,
        poses=motion.poses.ravel().tolist(),
        trans=motion.trans.ravel().tolist(),
        up_axis=up_axis,
    )


def _collect(events) -> tuple[list, features.Motion]:
    events = list(events)
    blocks = [e.frames for e in events if e.WhichOneof("event") == "frames"]
    poses = [np.reshape(b.frames.poses, (b.frames.n_frames, 165)) for b in blocks]
    trans = [np.reshape(b.frames.trans, (b.frames.n_frames, 3)) for b in blocks]
    return events, features.Motion(np.concatenate(poses), np.concatenate(trans))


def _decode_messages(body, hand, chunk: int, start_frame: int = 0, turn_id: str = "d1"):
    yield motion_pb2.DecodeMotionRequest(
        turn=_turn(turn_id), config=motion_pb2.MotionConfig(start_frame=start_frame)
    )
    for start in range(0, len(body), chunk):
        tokens = motion_pb2.MotionTokens(
            body_ids=body[start : start + chunk], hand_ids=hand[start : start + chunk]
        )
        yield motion_pb2.DecodeMotionRequest(turn=_turn(turn_id), tokens=tokens)
    yield motion_pb2.DecodeMotionRequest(turn=_turn(turn_id), end=common_pb2.StreamEnd())


def test_health_is_serving(server):
    assert check_health(server.address, "solami.v1.MotionService") == "SERVING"


def test_text_to_motion_streams_timed_blocks(stub):
    request = motion_pb2.TextToMotionRequest(
        turn=_turn(), text="wave hello to me", duration_s=3.0, start_frame=45
    )
    events, motion = _collect(stub.TextToMotion(request, timeout=30))
    header, end = events[0], events[-1]
    assert header.header.source == "wave" and header.header.fps == 30
    assert header.header.pose_dims == 165 and header.header.score > 0.5
    assert end.end.total_frames == motion.n_frames == 90
    blocks = [e.frames for e in events[1:-1]]
    assert [b.start_frame for b in blocks] == [45, 75, 105]
    assert [b.start_ms for b in blocks] == [1500, 2500, 3500]
    assert all(e.turn.turn_id == "t1" for e in events)
    bow = list(stub.TextToMotion(motion_pb2.TextToMotionRequest(text="take a bow"), timeout=30))
    assert bow[0].header.source == "bow"


def test_encode_user_motion_of_real_clips(stub):
    clip = smplx_ai()
    reply = stub.EncodeUserMotion(
        motion_pb2.EncodeUserMotionRequest(turn=_turn("e1"), user=_frames(clip)), timeout=30
    )
    assert reply.turn.turn_id == "e1"
    assert len(reply.body_ids) == len(reply.hand_ids) == 59
    assert max(reply.body_ids) < 512 and max(reply.hand_ids) < 512 and reply.trans_id < 256
    user, character = relay_user_and_character()
    zup = stub.EncodeUserMotion(
        motion_pb2.EncodeUserMotionRequest(
            user=_frames(user, motion_pb2.UP_AXIS_Z),
            character=_frames(character, motion_pb2.UP_AXIS_Z),
        ),
        timeout=30,
    )
    yup = stub.EncodeUserMotion(
        motion_pb2.EncodeUserMotionRequest(
            user=_frames(features.convert_up_axis(user)),
            character=_frames(features.convert_up_axis(character)),
        ),
        timeout=30,
    )
    assert len(zup.body_ids) == 7
    assert (zup.trans_id, list(zup.body_ids)) == (yup.trans_id, list(yup.body_ids))


def test_decode_stream_is_seamless_and_timed(server, stub):
    rng = np.random.default_rng(3)
    body, hand = rng.integers(0, 512, 30).tolist(), rng.integers(0, 512, 30).tolist()
    events, streamed = _collect(
        stub.DecodeMotion(_decode_messages(body, hand, chunk=4, start_frame=60), timeout=30)
    )
    assert events[0].header.source == "vqvae"
    assert events[-1].end.total_frames == streamed.n_frames == 120
    blocks = [e.frames for e in events[1:-1]]
    starts = [b.start_frame for b in blocks]
    sizes = [b.frames.n_frames for b in blocks]
    assert starts[0] == 60 and starts == list(60 + np.cumsum([0, *sizes[:-1]]))
    assert all(e.turn.turn_id == "d1" for e in events)
    one_shot = server.host.engine.codec.decode(np.array(body), np.array(hand))
    angle = features.rotations.geodesic_angle(streamed.rotations(), one_shot.rotations())
    assert angle.max() < 1e-3 and np.abs(streamed.trans - one_shot.trans).max() < 1e-3


BAD_ENCODE = {
    "one-frame": (lambda c: _frames(features.Motion(c.poses[:1], c.trans[:1])), "at least 2"),
    "short-poses": (
        lambda c: motion_pb2.SmplxFrames(
            n_frames=10, poses=c.poses[:10, :160].ravel().tolist(), trans=c.trans[:10].ravel()
        ),
        "expected n_frames x 165",
    ),
    "nan": (
        lambda c: _frames(features.Motion(np.where(np.arange(165) == 7, np.nan, c.poses), c.trans)),
        "NaN",
    ),
    "too-long": (
        lambda c: _frames(features.Motion(np.tile(c.poses, (3, 1)), np.tile(c.trans, (3, 1)))),
        "over the limit of 600 frames",
    ),
    "millimetres": (lambda c: _frames(features.Motion(c.poses, c.trans * 1000)), "metres"),
}


@pytest.mark.parametrize("case", sorted(BAD_ENCODE))
def test_bad_user_motion_is_invalid_argument(stub, case):
    make, message = BAD_ENCODE[case]
    with pytest.raises(grpc.RpcError) as error:
        stub.EncodeUserMotion(motion_pb2.EncodeUserMotionRequest(user=make(smplx_ai())), timeout=30)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in error.value.details()


def test_bad_character_pose_is_invalid_argument(stub):
    clip = smplx_ai()
    request = motion_pb2.EncodeUserMotionRequest(user=_frames(clip), character=_frames(clip))
    with pytest.raises(grpc.RpcError) as error:
        stub.EncodeUserMotion(request, timeout=30)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "expected one frame" in error.value.details()


def _config():
    return motion_pb2.DecodeMotionRequest(config=motion_pb2.MotionConfig())


def _tokens(body, hand):
    tokens = motion_pb2.MotionTokens(body_ids=body, hand_ids=hand)
    return motion_pb2.DecodeMotionRequest(tokens=tokens)


_END = motion_pb2.DecodeMotionRequest(end=common_pb2.StreamEnd())


@pytest.mark.parametrize(
    ("messages", "message"),
    [
        ([_config(), _tokens([1, 2, 512], [1, 2, 3]), _END], "body id 512 at position 2"),
        (
            [_config(), _tokens([1], [1]), _tokens([2], [70000]), _END],
            "hand id 70000 at position 1",
        ),
        ([_tokens([1], [1]), _END], "must start with a config"),
        ([_config(), _tokens([1, 2], [1, 2])], "without an end message"),
        ([_config(), _tokens([1] * 65, [1] * 65), _END], f"more than {MAX_TOKENS} body ids"),
    ],
    ids=["body-range", "hand-range", "no-config", "no-end", "too-many"],
)
def test_bad_decode_streams_are_invalid_argument(stub, messages, message):
    with pytest.raises(grpc.RpcError) as error:
        list(stub.DecodeMotion(iter(messages), timeout=30))
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in error.value.details()


@pytest.mark.parametrize(
    ("text", "seconds", "message"),
    [
        ("   ", 2.0, "text is empty"),
        ("wave", -1.0, "duration_s must be between 0 and 20"),
        ("wave", 21.0, "duration_s must be between 0 and 20"),
        ("wave " * 200, 2.0, "the limit is 500"),
    ],
    ids=["empty", "negative", "too-long", "long-text"],
)
def test_bad_text_to_motion_is_invalid_argument(stub, text, seconds, message):
    request = motion_pb2.TextToMotionRequest(text=text, duration_s=seconds)
    with pytest.raises(grpc.RpcError) as error:
        list(stub.TextToMotion(request, timeout=30))
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in error.value.details()


def test_without_a_checkpoint_tokens_are_unavailable_and_text_works():
    settings = _settings()
    running = InProcessServer(DEFINITION, settings, MotionEngine(settings, shared_embedder()))
    running.start()
    try:
        with sync_channel(running.address) as channel:
            stub = motion_pb2_grpc.MotionServiceStub(channel)
            request = motion_pb2.EncodeUserMotionRequest(user=_frames(smplx_ai()))
            for call in (
                lambda: stub.EncodeUserMotion(request, timeout=30),
                lambda: list(stub.DecodeMotion(iter([_config(), _END]), timeout=30)),
            ):
                with pytest.raises(grpc.RpcError) as error:
                    call()
                assert error.value.code() == grpc.StatusCode.UNAVAILABLE
                assert "SOLAMI_MOTION_CHECKPOINT_DIR" in error.value.details()
            nod = list(stub.TextToMotion(motion_pb2.TextToMotionRequest(text="nod"), timeout=30))
            assert nod[0].header.source == "nod" and nod[-1].end.total_frames > 30
    finally:
        running.stop()


def test_cli_text2motion_encode_decode(server, tmp_path):
    env = {"SOLAMI_MOTION_ADDR": server.address}
    out = tmp_path / "wave.npz"
    process = spawn(
        [
            "-m",
            "solami_cli",
            "call",
            "motion",
            "text2motion",
            "wave hello",
            "--seconds",
            "3",
            "--out",
            str(out),
        ],
        env,
    )
    stdout, stderr = finish(process, 120)
    assert process.returncode == 0, stderr
    result = json.loads(stdout)
    assert result["frames"] == 90 and result["fps"] == 30 and result["source"] == "wave"
    with np.load(out) as data:
        assert data["poses"].shape == (90, 165) and data["trans"].shape == (90, 3)
    process = spawn(["-m", "solami_cli", "call", "motion", "encode", str(SMPLX_AI)], env)
    stdout, stderr = finish(process, 120)
    assert process.returncode == 0, stderr
    encoded = json.loads(stdout)
    assert len(encoded["body_ids"]) == 59 and 0 <= encoded["trans_id"] < 256
    body = ",".join(map(str, encoded["body_ids"][:3]))
    hand = ",".join(map(str, encoded["hand_ids"][:3]))
    out = tmp_path / "decoded.npz"
    process = spawn(
        [
            "-m",
            "solami_cli",
            "call",
            "motion",
            "decode",
            "--body",
            body,
            "--hand",
            hand,
            "--out",
            str(out),
        ],
        env,
    )
    stdout, stderr = finish(process, 120)
    assert process.returncode == 0, stderr
    assert json.loads(stdout)["frames"] == 12
    process = spawn(
        ["-m", "solami_cli", "call", "motion", "decode", "--body", "1,999", "--hand", "1,2"], env
    )
    _, stderr = finish(process, 120)
    assert process.returncode == 1 and "INVALID_ARGUMENT" in stderr and "out of range" in stderr


@pytest.mark.e2e
def test_solami_serve_motion_process(tmp_path):
    port = free_port()
    env = {"SOLAMI_MOTION_PORT": str(port), "SOLAMI_MOTION_METRICS_PORT": "-1"}
    process = spawn(["-m", "solami_cli", "serve", "motion"], env)
    try:
        address = f"127.0.0.1:{port}"
        wait_for_health(address, "solami.v1.MotionService", "SERVING", timeout_s=120)
        with sync_channel(address) as channel:
            stub = motion_pb2_grpc.MotionServiceStub(channel)
            request = motion_pb2.TextToMotionRequest(text="shrug", duration_s=1.0)
            events = list(stub.TextToMotion(request, timeout=30))
        assert events[0].header.source == "shrug" and events[-1].end.total_frames == 30
    finally:
        process.send_signal(signal.SIGTERM)
        finish(process, 120)
    assert process.returncode == 0
