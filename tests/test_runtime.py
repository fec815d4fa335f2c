"""The shared runtime over a real in-process gRPC server: health, reflection, metrics, errors."""

from __future__ import annotations

import urllib.request

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

from services.asr.engine import AsrEngine
from services.asr.server import DEFINITION
from solami import audio
from solami.client import sync_channel
from solami.v1 import asr_pb2, asr_pb2_grpc, common_pb2
from tests.support.fakes import FakeTranscriber
from tests.support.servers import InProcessServer

FULL_NAME = "solami.v1.AsrService"


def _tone_wav(seconds: float = 1.0, rate: int = 16_000) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    return audio.encode_wav((0.2 * np.sin(2 * np.pi * 300 * t)).astype(np.float32), rate)


@pytest.fixture
def fake_server(asr_settings):
    transcriber = FakeTranscriber()
    import dataclasses

    settings = dataclasses.replace(asr_settings, vad=False)
    server = InProcessServer(DEFINITION, settings, AsrEngine(settings, transcriber))
    server.transcriber = transcriber
    yield server
    server.stop()


def _health(channel: grpc.Channel, service: str) -> int:
    stub = health_pb2_grpc.HealthStub(channel)
    return stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=2).status


def test_health_goes_serving_only_after_load_and_warmup(fake_server):
    fake_server.start(load=False)
    with sync_channel(fake_server.address) as channel:
        for service in ("", FULL_NAME):
            assert _health(channel, service) == health_pb2.HealthCheckResponse.NOT_SERVING
        stub = asr_pb2_grpc.AsrServiceStub(channel)
        with pytest.raises(grpc.RpcError) as refused:
            stub.Transcribe(asr_pb2.TranscribeRequest(wav=_tone_wav()), timeout=5)
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "loading" in refused.value.details()

        fake_server.run(fake_server.host.load_engine())
        assert fake_server.transcriber.calls == 1  # the warm-up inference ran
        for service in ("", FULL_NAME):
            assert _health(channel, service) == health_pb2.HealthCheckResponse.SERVING


def test_reflection_lists_the_service(fake_server):
    fake_server.start()
    with sync_channel(fake_server.address) as channel:
        services = ProtoReflectionDescriptorDatabase(channel).get_services()
    assert FULL_NAME in services
    assert "grpc.health.v1.Health" in services


def test_metrics_endpoint_has_request_counter_and_latency_histogram(fake_server):
    fake_server.start()
    with sync_channel(fake_server.address) as channel:
        reply = asr_pb2_grpc.AsrServiceStub(channel).Transcribe(
            asr_pb2.TranscribeRequest(wav=_tone_wav()), timeout=10
        )
    assert reply.text == "1.0 seconds"
    url = f"http://127.0.0.1:{fake_server.host.metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:
        body = response.read().decode()
    assert 'solami_asr_requests_total{code="OK",method="Transcribe"} 1.0' in body
    assert 'solami_asr_request_duration_seconds_bucket{le="0.5",method="Transcribe"}' in body
    assert "solami_asr_model_load_seconds_count 1.0" in body
    assert "solami_asr_serving 1.0" in body


def test_errors_map_to_status_codes_and_the_service_keeps_serving(fake_server):
    fake_server.start()
    with sync_channel(fake_server.address) as channel:
        stub = asr_pb2_grpc.AsrServiceStub(channel)
        with pytest.raises(grpc.RpcError) as bad:
            stub.Transcribe(asr_pb2.TranscribeRequest(wav=b"not a wav"), timeout=5)
        assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "not a WAV" in bad.value.details()

        fake_server.transcriber.fail_with = RuntimeError("cuda exploded")
        with pytest.raises(grpc.RpcError) as crash:
            stub.Transcribe(asr_pb2.TranscribeRequest(wav=_tone_wav()), timeout=5)
        assert crash.value.code() == grpc.StatusCode.INTERNAL
        assert "cuda exploded" not in crash.value.details()  # internals stay in the log
        assert "ref" in crash.value.details()

        fake_server.transcriber.fail_with = None
        assert stub.Transcribe(asr_pb2.TranscribeRequest(wav=_tone_wav()), timeout=5).text


def test_unhealthy_engine_turns_health_not_serving(fake_server, monkeypatch):
    import solami.server

    monkeypatch.setattr(solami.server, "WATCHDOG_INTERVAL_S", 0.05)
    fake_server.start()
    engine = fake_server.host.engine
    monkeypatch.setattr(type(engine), "healthy", property(lambda self: False))
    import time

    with sync_channel(fake_server.address) as channel:
        deadline = time.monotonic() + 5
        while _health(channel, FULL_NAME) != health_pb2.HealthCheckResponse.NOT_SERVING:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        with pytest.raises(grpc.RpcError) as refused:
            asr_pb2_grpc.AsrServiceStub(channel).Transcribe(
                asr_pb2.TranscribeRequest(wav=_tone_wav()), timeout=5
            )
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE


def test_oversized_message_is_rejected_cleanly(fake_server):
    fake_server.start()
    too_big = b"RIFF" + bytes(33 * 1024 * 1024)
    with grpc.insecure_channel(
        fake_server.address, options=[("grpc.max_send_message_length", 64 * 1024 * 1024)]
    ) as channel:
        stub = asr_pb2_grpc.AsrServiceStub(channel)
        with pytest.raises(grpc.RpcError) as rejected:
            stub.Transcribe(asr_pb2.TranscribeRequest(wav=too_big), timeout=10)
        assert rejected.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert stub.Transcribe(asr_pb2.TranscribeRequest(wav=_tone_wav()), timeout=5).text


def test_streaming_rpc_with_turn_ids(fake_server):
    fake_server.start()
    turn = common_pb2.TurnContext(session_id="s1", turn_id="t7")
    samples = np.zeros(16_000, dtype=np.float32)

    def messages():
        header = common_pb2.AudioHeader(
            sample_rate_hz=16_000, channels=1, encoding=common_pb2.AUDIO_ENCODING_PCM16
        )
        yield common_pb2.AudioInput(turn=turn, header=header)
        yield common_pb2.AudioInput(
            turn=turn, chunk=common_pb2.AudioChunk(data=audio.float_to_pcm16(samples))
        )
        yield common_pb2.AudioInput(turn=turn, end=common_pb2.AudioEnd())

    with sync_channel(fake_server.address) as channel:
        events = list(asr_pb2_grpc.AsrServiceStub(channel).StreamTranscribe(messages(), timeout=10))
    assert events[-1].WhichOneof("event") == "final"
    assert events[-1].turn.turn_id == "t7"
    assert events[-1].final.text == "1.0 seconds"
