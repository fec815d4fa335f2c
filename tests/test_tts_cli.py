"""`solami serve tts` as a process and `solami call tts ...` against it."""

from __future__ import annotations

import json
import signal

import numpy as np
import pytest

from solami import audio
from tests.support.servers import finish, free_port, spawn, wait_for_health
from tests.support.tts_models import save_tiny_vocode_models

pytestmark = pytest.mark.e2e

FULL_NAME = "solami.v1.TtsService"


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    soundstorm_dir, speechtokenizer_dir = save_tiny_vocode_models(tmp_path_factory.mktemp("m"))
    port = free_port()
    env = {
        "SOLAMI_TTS_PORT": str(port),
        "SOLAMI_TTS_HOST": "127.0.0.1",
        "SOLAMI_TTS_METRICS_PORT": "-1",
        "SOLAMI_TTS_CPU_THREADS": "1",
        "SOLAMI_TTS_SOUNDSTORM_DIR": str(soundstorm_dir),
        "SOLAMI_TTS_SPEECHTOKENIZER_DIR": str(speechtokenizer_dir),
    }
    process = spawn(["-m", "solami_cli", "serve", "tts"], env)
    address = f"127.0.0.1:{port}"
    try:
        wait_for_health(address, FULL_NAME, "SERVING", timeout_s=90)
        yield address
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0


def _call(address: str, *args: str) -> dict:
    reply = spawn(["-m", "solami_cli", "call", "tts", *args], {"SOLAMI_TTS_ADDR": address})
    stdout, stderr = finish(reply, 120)
    assert reply.returncode == 0, stderr
    return json.loads(stdout)


def test_synthesize_writes_a_wav_and_prints_timings(service, tmp_path):
    out = tmp_path / "reply.wav"
    result = _call(
        service,
        "synthesize",
        "--character",
        "Samantha",
        "--out",
        str(out),
        "Hello there. Shall we dance?",
    )
    samples, rate = audio.decode_wav(out.read_bytes(), 60)
    assert rate == result["sample_rate_hz"] == 22_050
    assert result["duration_s"] == pytest.approx(samples.size / rate, abs=0.001)
    assert 0 < result["first_audio_ms"] <= result["total_ms"]
    assert [w["word"] for w in result["words"]] == ["Hello", "there", "Shall", "we", "dance"]
    assert len(result["phonemes"]) >= 10
    assert np.max(np.abs(samples)) > 0.1


def test_vocode_and_voices(service, tmp_path):
    units = tmp_path / "units.json"
    units.write_text(json.dumps({"units": list(range(100, 200))}))
    result = _call(
        service, "vocode", str(units), "--character", "Batman", "--out", str(tmp_path / "units.wav")
    )
    assert result["sample_rate_hz"] == 16_000
    assert result["duration_s"] == pytest.approx(2.0, abs=0.02)
    voices = _call(service, "voices")
    assert voices["backend"] == "piper" and voices["vocode_available"]
    assert voices["characters"]["Batman"] == "deep"


def test_bad_input_is_reported_with_its_status(service, tmp_path):
    reply = spawn(
        [
            "-m",
            "solami_cli",
            "call",
            "tts",
            "synthesize",
            "--character",
            "Joker",
            "--out",
            str(tmp_path / "x.wav"),
            "Hi.",
        ],
        {"SOLAMI_TTS_ADDR": service},
    )
    _, stderr = finish(reply, 120)
    assert reply.returncode == 1
    assert "INVALID_ARGUMENT" in stderr and "unknown character 'Joker'" in stderr
