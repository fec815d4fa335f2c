"""The relay's typed service clients over real gRPC on loopback, against scripted test servicers
(named as such: they stand in for a service's behaviour at its edges, which the real services
cannot be made to show on demand): retries of idempotent calls, errors mapped to the turn's
stage, deadlines, streams cancelled when the turn drops them, and face frames put in the
avatar's channel order and frame rate whatever the service sends."""

from __future__ import annotations

import asyncio

import grpc
import numpy as np
import pytest

from relay.clients import ServiceClients
from relay.errors import TurnError
from relay.metrics import RelayMetrics
from relay.sessions import Message
from relay.settings import RelaySettings
from solami.avatar.face import CHANNEL_COUNT, CHANNELS, INDEX
from solami.avatar.rates import FPS
from solami.v1 import (
    asr_pb2,
    asr_pb2_grpc,
    common_pb2,
    face_pb2,
    face_pb2_grpc,
    llm_pb2,
    llm_pb2_grpc,
    motion_pb2,
    motion_pb2_grpc,
    tts_pb2_grpc,
)

TURN = common_pb2.TurnContext(session_id="s", turn_id="t")


class ScriptedAsr(asr_pb2_grpc.AsrServiceServicer):
    """Answers Transcribe with each status of ``failures`` in turn, then with ``text``."""

    def __init__(self, failures: list[grpc.StatusCode], text: str = "hello there") -> None:
        self.failures = list(failures)
        self.text = text
        self.calls = 0

    async def Transcribe(self, request, context):
        self.calls += 1
        if self.failures:
            await context.abort(self.failures.pop(0), "scripted failure")
        return asr_pb2.TranscribeResponse(turn=request.turn, text=f"  {self.text} ")


class ScriptedLlm(llm_pb2_grpc.LlmServiceServicer):
    """Streams sentences until the client goes away; records that it was cancelled."""

    def __init__(self) -> None:
        self.cancelled = asyncio.Event()
        self.requests: list[llm_pb2.GenerateRequest] = []

    async def Generate(self, request, context):
        self.requests.append(request)
        index = 0
        try:
            while True:
                sentence = llm_pb2.Sentence(text=f"S{index}.")
                yield llm_pb2.GenerateEvent(turn=request.turn, sentence=sentence)
                index += 1
                await asyncio.sleep(0.01)
        except asyncio.CancelledError:
            self.cancelled.set()
            raise


class ScriptedFace(face_pb2_grpc.FaceServiceServicer):
    """Sends frames at ``fps`` with the channels in reverse order, each weight = its channel's
    index in the avatar order divided by 100."""

    def __init__(self, fps: float, frames: int) -> None:
        self.fps = fps
        self.frames = frames

    async def Animate(self, request_iterator, context):
        async for _ in request_iterator:
            pass
        names = list(reversed(CHANNELS))
        yield face_pb2.FaceEvent(header=face_pb2.FaceHeader(fps=self.fps, channel_names=names))
        row = [INDEX[name] / 100 for name in names]
        yield face_pb2.FaceEvent(
            frames=face_pb2.FaceFrames(n_frames=self.frames, weights=row * self.frames)
        )


class ScriptedMotion(motion_pb2_grpc.MotionServiceServicer):
    """Refuses every user clip as bad input; answers text with a frame block of 100 numbers
    (not whole 165-number poses)."""

    async def EncodeUserMotion(self, request, context):
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "scripted bad clip")

    async def TextToMotion(self, request, context):
        frames = motion_pb2.SmplxFrames(n_frames=1, poses=[0.0] * 100, trans=[0.0] * 3)
        yield motion_pb2.MotionEvent(header=motion_pb2.MotionHeader(fps=30, pose_dims=165))
        yield motion_pb2.MotionEvent(frames=motion_pb2.MotionFrameBlock(frames=frames))


class SlowTts(tts_pb2_grpc.TtsServiceServicer):
    """Never answers in time."""

    async def Synthesize(self, request_iterator, context):
        await asyncio.sleep(30)
        yield  # pragma: no cover


@pytest.fixture
async def serve(monkeypatch):
    """Starts test servicers on loopback and points the relay's clients at them."""
    servers = []

    async def start(name: str, add, servicer, **settings) -> ServiceClients:
        server = grpc.aio.server()
        add(servicer, server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        servers.append(server)
        monkeypatch.setenv(f"SOLAMI_{name.upper()}_ADDR", f"127.0.0.1:{port}")
        metrics = RelayMetrics()
        return ServiceClients.connect(RelaySettings(**settings), metrics), metrics

    yield start
    for server in servers:
        await server.stop(0)


def _count(metrics: RelayMetrics, service: str, rpc: str, code: str) -> float:
    value = metrics.registry.get_sample_value(
        "solami_relay_service_calls_total", {"service": service, "rpc": rpc, "code": code}
    )
    return value or 0.0


async def test_an_unavailable_transcribe_is_retried_once(serve):
    asr = ScriptedAsr([grpc.StatusCode.UNAVAILABLE])
    clients, metrics = await serve("asr", asr_pb2_grpc.add_AsrServiceServicer_to_server, asr)
    assert await clients.asr.transcribe(TURN, b"RIFF") == "hello there"
    assert asr.calls == 2
    assert _count(metrics, "asr", "Transcribe", "OK") == 1
    await clients.close()


async def test_a_transcribe_unavailable_twice_fails_the_asr_stage(serve):
    asr = ScriptedAsr([grpc.StatusCode.UNAVAILABLE] * 2)
    clients, metrics = await serve("asr", asr_pb2_grpc.add_AsrServiceServicer_to_server, asr)
    with pytest.raises(TurnError) as caught:
        await clients.asr.transcribe(TURN, b"RIFF")
    assert caught.value.stage == "asr" and "UNAVAILABLE" in caught.value.reason
    assert asr.calls == 2
    assert _count(metrics, "asr", "Transcribe", "UNAVAILABLE") == 1
    await clients.close()


async def test_bad_audio_is_the_users_input_and_is_not_retried(serve):
    asr = ScriptedAsr([grpc.StatusCode.INVALID_ARGUMENT])
    clients, _ = await serve("asr", asr_pb2_grpc.add_AsrServiceServicer_to_server, asr)
    with pytest.raises(TurnError) as caught:
        await clients.asr.transcribe(TURN, b"not a wav")
    assert caught.value.stage == "input"
    assert asr.calls == 1
    await clients.close()


async def test_invalid_argument_elsewhere_is_that_services_failure(serve):
    clients, _ = await serve(
        "motion", motion_pb2_grpc.add_MotionServiceServicer_to_server, ScriptedMotion()
    )
    clip = (np.zeros((4, 165), np.float32), np.zeros((4, 3), np.float32))
    with pytest.raises(TurnError) as caught:
        await clients.motion.encode_user_motion(TURN, clip, clip)
    assert caught.value.stage == "motion"
    await clients.close()


async def test_closing_a_reply_stream_cancels_the_call(serve):
    llm = ScriptedLlm()
    clients, metrics = await serve("llm", llm_pb2_grpc.add_LlmServiceServicer_to_server, llm)
    history = [Message("user", text="Hi"), Message("character", text="Hello.", motion="wave")]
    events = clients.llm.generate(
        TURN, "Samantha", "dlp+retrieval", history, Message("user", text="How are you?")
    )
    first = await anext(events)
    assert first.text == "S0."
    await events.aclose()
    await asyncio.wait_for(llm.cancelled.wait(), 10)
    (request,) = llm.requests
    assert request.method == llm_pb2.CONVERSATION_METHOD_DLP_RETRIEVAL
    assert [m.text for m in request.history] == ["Hi", "Hello."]
    assert request.history[1].motion_text == "wave" and request.user.text == "How are you?"
    assert _count(metrics, "llm", "Generate", "CANCELLED") == 1
    await clients.close()


async def test_a_stage_past_its_deadline_fails_with_deadline_exceeded(serve):
    clients, _ = await serve(
        "tts", tts_pb2_grpc.add_TtsServiceServicer_to_server, SlowTts(), tts_deadline_s=0.3
    )
    with pytest.raises(TurnError) as caught:
        async for _ in clients.tts.synthesize(TURN, "Samantha", "Hello."):
            pass
    assert caught.value.stage == "tts" and "DEADLINE_EXCEEDED" in caught.value.reason
    await clients.close()


@pytest.mark.parametrize("fps", [FPS, 2 * FPS])
async def test_face_frames_follow_the_channel_names_and_rate_the_service_sends(serve, fps):
    face = ScriptedFace(fps, frames=int(fps))
    clients, _ = await serve("face", face_pb2_grpc.add_FaceServiceServicer_to_server, face)
    frames = await clients.face.animate(TURN, np.zeros(16_000, np.float32), 16_000)
    assert frames.shape == (FPS, CHANNEL_COUNT)
    np.testing.assert_allclose(frames[0], np.arange(CHANNEL_COUNT) / 100, atol=1e-6)
    await clients.close()


async def test_a_malformed_frame_block_is_that_services_failure(serve):
    clients, _ = await serve(
        "motion", motion_pb2_grpc.add_MotionServiceServicer_to_server, ScriptedMotion()
    )
    with pytest.raises(TurnError) as caught:
        await clients.motion.text_to_motion(TURN, "wave", 1.0)
    assert caught.value.stage == "motion" and "not rows of 165" in caught.value.reason
    await clients.close()
