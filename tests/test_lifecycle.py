"""Service processes: SIGTERM drains in-flight streams; bad settings fail at start."""

from __future__ import annotations

import signal
import threading
import time
import urllib.request

import grpc
import numpy as np
import pytest

from solami import audio
from solami.client import check_health, sync_channel
from solami.v1 import asr_pb2, asr_pb2_grpc, common_pb2
from tests.support.servers import finish, free_port, spawn, wait_for_health, wait_until

pytestmark = pytest.mark.e2e

FULL_NAME = "solami.v1.AsrService"


def _audio_stream(seconds: float = 1.0):
    turn = common_pb2.TurnContext(session_id="s", turn_id="drain")
    header = common_pb2.AudioHeader(
        sample_rate_hz=16_000, channels=1, encoding=common_pb2.AUDIO_ENCODING_PCM16
    )
    yield common_pb2.AudioInput(turn=turn, header=header)
    pcm = audio.float_to_pcm16(np.zeros(int(seconds * 16_000), dtype=np.float32))
    yield common_pb2.AudioInput(turn=turn, chunk=common_pb2.AudioChunk(data=pcm))
    yield common_pb2.AudioInput(turn=turn, end=common_pb2.AudioEnd())


def test_sigterm_drains_inflight_stream_then_exits_zero():
    port, metrics_port = free_port(), free_port()
    process = spawn(
        ["-m", "tests.support.fake_asr_service"],
        {
            "SOLAMI_ASR_PORT": str(port),
            "SOLAMI_ASR_HOST": "127.0.0.1",
            "SOLAMI_ASR_METRICS_PORT": str(metrics_port),
            "SOLAMI_ASR_VAD": "false",
            "SOLAMI_ASR_GRACE_S": "10",
            "SOLAMI_FAKE_DELAY_S": "2.0",
        },
    )
    address = f"127.0.0.1:{port}"
    try:
        wait_for_health(address, FULL_NAME, "SERVING", timeout_s=60)
        results: dict[str, object] = {}

        def call() -> None:
            with sync_channel(address) as channel:
                stub = asr_pb2_grpc.AsrServiceStub(channel)
                try:
                    results["events"] = list(stub.StreamTranscribe(_audio_stream(), timeout=30))
                except grpc.RpcError as exc:
                    results["error"] = exc

        inflight = threading.Thread(target=call)
        inflight.start()
        # The call is inside its 2 s transcription once the server counts it in flight.
        wait_until(lambda: _inflight(metrics_port, "StreamTranscribe") >= 1, "the call arriving")
        signal_sent = time.monotonic()
        process.send_signal(signal.SIGTERM)
        wait_until(lambda: check_health(address, FULL_NAME, 0.5) != "SERVING", "the drain")

        with sync_channel(address) as channel, pytest.raises(grpc.RpcError) as refused:
            asr_pb2_grpc.AsrServiceStub(channel).Transcribe(
                asr_pb2.TranscribeRequest(wav=audio.encode_wav(np.zeros(1600), 16_000)),
                timeout=5,
            )
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE

        inflight.join(30)
        assert "error" not in results, results.get("error")
        events = results["events"]
        assert events[-1].final.text == "1.0 seconds"
        assert events[-1].turn.turn_id == "drain"

        assert process.wait(timeout=15) == 0
        assert time.monotonic() - signal_sent < 10
    finally:
        if process.poll() is None:
            process.kill()
        finish(process, 5)


def _inflight(metrics_port: int, method: str) -> float:
    url = f"http://127.0.0.1:{metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as reply:
        for line in reply.read().decode().splitlines():
            if line.startswith(f'solami_asr_inflight_requests{{method="{method}"}} '):
                return float(line.rsplit(" ", 1)[1])
    return 0.0


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("SOLAMI_ASR_PORT", "abc", "SOLAMI_ASR_PORT must be an integer, got 'abc'"),
        ("SOLAMI_ASR_PORT", "70000", "SOLAMI_ASR_PORT must be a TCP port"),
        ("SOLAMI_ASR_VAD", "maybe", "SOLAMI_ASR_VAD must be a boolean"),
        ("SOLAMI_ASR_BACKEND", "nope", "SOLAMI_ASR_BACKEND must be one of"),
        ("SOLAMI_ASR_LOG_LEVEL", "foo", "SOLAMI_ASR_LOG_LEVEL must be a log level"),
        ("SOLAMI_ASR_KEEPALIVE_S", "0", "SOLAMI_ASR_KEEPALIVE_S must be a number > 0"),
    ],
)
def test_bad_setting_fails_at_start_naming_the_variable(variable, value, message):
    process = spawn(["-m", "solami_cli", "serve", "asr"], {variable: value})
    _stdout, stderr = finish(process, 120)
    assert process.returncode == 2
    assert message in stderr
