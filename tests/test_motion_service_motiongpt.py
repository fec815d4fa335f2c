"""The motion service with MotionGPT (``SOLAMI_MOTION_MOTIONGPT_DIR``): the tiny model of the
golden fixture (released layout, trained a little so it answers in the motion format), loaded
by the real loader and called over real gRPC — CaptionMotion comes from it, TextToMotion asked
to generate is its motion, and retrieval still answers the rest."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from services.motion.engine import GENERATED_SOURCE, MotionEngine
from services.motion.server import DEFINITION
from services.motion.settings import MotionSettings
from solami.avatar.skeleton import POSE_DIMS
from solami.client import sync_channel
from solami.settings import SettingsError
from solami.v1 import common_pb2, motion_pb2, motion_pb2_grpc
from tests.support.motion_models import shared_embedder, smplx_ai
from tests.support.servers import InProcessServer

MOTIONGPT = Path(__file__).parent / "fixtures" / "motiongpt"


def _settings(**overrides) -> MotionSettings:
    return dataclasses.replace(
        MotionSettings(), host="127.0.0.1", port=0, metrics_port=-1, **overrides
    )


@pytest.fixture(scope="module")
def stub():
    settings = _settings(motiongpt_dir=MOTIONGPT)
    running = InProcessServer(DEFINITION, settings, MotionEngine(settings, shared_embedder()))
    server = running.start()
    assert server.host.engine.name == "library+motiongpt"
    with sync_channel(server.address) as channel:
        yield motion_pb2_grpc.MotionServiceStub(channel)
    running.stop()


def _frames(poses: np.ndarray, trans: np.ndarray) -> motion_pb2.SmplxFrames:
    return motion_pb2.SmplxFrames(
        n_frames=len(poses), poses=poses.ravel().tolist(), trans=trans.ravel().tolist()
    )


def _motion(events) -> tuple[str, np.ndarray]:
    source = events[0].header.source
    poses = [np.asarray(e.frames.frames.poses).reshape(-1, POSE_DIMS) for e in events[1:-1]]
    return source, np.concatenate(poses)


def test_captions_come_from_motiongpt(stub):
    clip = smplx_ai()
    request = motion_pb2.CaptionMotionRequest(
        turn=common_pb2.TurnContext(turn_id="c1"), user=_frames(clip.poses[:90], clip.trans[:90])
    )
    reply = stub.CaptionMotion(request, timeout=60)
    assert reply.source == GENERATED_SOURCE
    assert 0.0 <= reply.score <= 1.0
    assert reply.turn.turn_id == "c1"


def test_text_to_motion_asked_to_generate_is_motiongpts_motion(stub):
    generated = list(
        stub.TextToMotion(
            motion_pb2.TextToMotionRequest(text="a man waves", duration_s=2.0, generate=True),
            timeout=60,
        )
    )
    source, poses = _motion(generated)
    assert source == GENERATED_SOURCE and len(poses) > 1 and np.isfinite(poses).all()
    retrieved = list(
        stub.TextToMotion(motion_pb2.TextToMotionRequest(text="wave hello", duration_s=2.0))
    )
    assert _motion(retrieved)[0] == "wave"


def test_a_missing_motiongpt_directory_is_refused_at_start(tmp_path):
    with pytest.raises(SettingsError, match="MOTIONGPT_DIR"):
        _settings(motiongpt_dir=tmp_path / "nowhere").validate("SOLAMI_MOTION_")
