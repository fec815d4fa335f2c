"""The ``solami`` method through the relay, end to end: every service and the relay as real
processes on the models a SOLAMI deployment loads from paths, each built tiny (SpeechTokenizer
for asr Tokenize and the Vocode decoder, SoundStorm, the motion VQ-VAEs, a SOLAMI LLaMA served
by the transformers engine whose weights are written so it answers with a fixed, well-formed
reply), and the headset simulator speaking the Quest protocol."""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import redis

from solami import audio
from solami_cli import simulator
from tests.support.motion_models import write_tiny_checkpoint
from tests.support.stack import Stack
from tests.support.tiny_solami import save_scripted_solami
from tests.support.tts_models import save_tiny_vocode_models

pytestmark = pytest.mark.e2e

QUESTION = Path(__file__).resolve().parents[1] / "solami_cli" / "data" / "question.wav"
SPEECH_UNITS = list(range(300, 400))  # 2 s of speech: two reply clips of about 1 s
BODY_IDS = [11, 12, 13, 14, 15, 16, 17, 18]
HAND_IDS = [21, 22, 23, 24, 25, 26, 27, 28]
REPLY = (
    " <sosp>" + "".join(f"<🗣️{u}>" for u in SPEECH_UNITS) + "<eosp>"
    "<sobo>" + "".join(f"<🕺{b}>" for b in BODY_IDS) + "<eobo>"
    "<soha>" + "".join(f"<🤚{h}>" for h in HAND_IDS) + "<eoha><eos>"
)
PARTS = ["asr", "llm", "tts", "motion", "face", "relay"]


@pytest.fixture(scope="module")
def stack(redis_url, tmp_path_factory):
    models = tmp_path_factory.mktemp("models")
    soundstorm_dir, speechtokenizer_dir = save_tiny_vocode_models(models)
    running = Stack(
        redis_url,
        tmp_path_factory.mktemp("stack"),
        SOLAMI_RELAY_METHOD="solami",
        SOLAMI_LLM_BACKEND="transformers",
        SOLAMI_LLM_MODEL=str(save_scripted_solami(models / "solami-llm", REPLY)),
        SOLAMI_ASR_SPEECHTOKENIZER_DIR=str(speechtokenizer_dir),
        SOLAMI_TTS_SOUNDSTORM_DIR=str(soundstorm_dir),
        SOLAMI_TTS_SPEECHTOKENIZER_DIR=str(speechtokenizer_dir),
        SOLAMI_MOTION_CHECKPOINT_DIR=str(write_tiny_checkpoint(models / "motion")),
    )
    for name in PARTS:
        running.start(name)
    try:
        running.wait_ready(PARTS)
        yield running
    finally:
        running.stop_all()


def _talk(stack: Stack, out: Path) -> dict:
    base = stack.env["SOLAMI_REDIS_URL"].rsplit("/", 1)[0]
    args = argparse.Namespace(
        wav=QUESTION,
        motion=None,
        character="Smplx",
        out=out,
        ws=stack.ws_url,
        redis=f"{base}/0",
        timeout_s=90.0,
        settle_s=1.5,
    )
    return asyncio.run(simulator.run(args))


def test_a_solami_turn_speaks_units_and_moves_tokens(stack, tmp_path):
    timeline = _talk(stack, tmp_path)
    assert timeline["outcome"] == "ok", timeline
    # 100 units at 50 per second, voiced in one Vocode stream at 16 kHz and cut into two clips
    # (+ the send-ahead silence each): the service holds back the audio of the last 2 units of
    # each chunk for its cross-fade, so the first clip is the first chunk's 48 units, sent
    # without waiting for the second chunk, and the last takes the 52 others.
    assert timeline["reply_wavs"] == 2
    for index, units in enumerate((48, 52)):
        samples, rate = audio.decode_wav((tmp_path / f"reply_{index}.wav").read_bytes(), 60)
        assert rate == 16_000 and np.isfinite(samples).all()
        assert len(samples) / rate == pytest.approx(units / 50 + 0.12, abs=0.01)
    # Every stage of the solami turn ran: Tokenize + EncodeUserMotion, Generate, Vocode,
    # DecodeMotion.
    for stage in ("asr", "llm_first_sentence", "tts_first_audio", "motion", "first_reply"):
        assert f"relay_{stage}_s" in timeline, timeline

    base = stack.env["SOLAMI_REDIS_URL"].rsplit("/", 1)[0]
    sessions = redis.Redis.from_url(f"{base}/1")
    session_id = sessions.get("solami:headset:main:session").decode()
    session = json.loads(sessions.get(f"solami:session:{session_id}"))
    assert session["method"] == "solami"
    user, character = session["history"][-2:]
    assert user["role"] == "user" and len(user["speech_units"]) > 0
    assert all(0 <= u < 1024 for u in user["speech_units"])
    assert user["body_ids"] and user["trans_id"] is not None  # the simulator's user motion
    assert character["speech_units"] == SPEECH_UNITS
    assert character["body_ids"] == BODY_IDS and character["hand_ids"] == HAND_IDS


def test_the_next_solami_turn_carries_the_history(stack, tmp_path):
    first = _talk(stack, tmp_path / "one")
    second = _talk(stack, tmp_path / "two")
    assert first["reply_wavs"] == second["reply_wavs"] == 2
    base = stack.env["SOLAMI_REDIS_URL"].rsplit("/", 1)[0]
    sessions = redis.Redis.from_url(f"{base}/1")
    session_id = sessions.get("solami:headset:main:session").decode()
    session = json.loads(sessions.get(f"solami:session:{session_id}"))
    roles = [message["role"] for message in session["history"]]
    assert roles[-4:] == ["user", "character", "user", "character"]


def test_the_original_model_server_api_runs_solami_sessions(stack):
    status, created = stack.post_form(
        "/create_session/", {"method": "solami", "character": "Samantha"}
    )
    assert status == 200, created
    # The original relay's request: the question and a Z-up npz of the user's motion with the
    # character's current pose.
    user = np.zeros((60, 165))
    user[:, 0] = np.pi / 2  # standing in a Z-up world
    motion = io.BytesIO()
    np.savez(
        motion,
        poses=user,
        trans=np.tile([0.0, 0.0, 0.95], (60, 1)),
        poses_ai=user[:1],
        trans_ai=np.array([[0.0, 1.5, 0.95]]),
    )
    status, reply = stack.post_form(
        "/interact/",
        {"session_id": created["session_id"]},
        {"audio": ("q.wav", QUESTION.read_bytes()), "motion": ("m.npz", motion.getvalue())},
    )
    assert status == 200, reply
    with urllib.request.urlopen(stack.http_url + reply["audio_url"], timeout=10) as got:
        samples, rate = audio.decode_wav(got.read(), 60)
    assert rate == 16_000 and len(samples) == len(SPEECH_UNITS) * rate // 50
    with urllib.request.urlopen(stack.http_url + reply["motion_url"], timeout=10) as got:
        motion_npz = got.read()
    with np.load(io.BytesIO(motion_npz)) as npz:
        assert npz["poses"].shape == (4 * len(BODY_IDS), 165)
    nan_poses = user.copy()
    nan_poses[3, 5] = np.nan
    for arrays, message in (
        ({"poses": np.zeros((5, 100))}, "must be an npz with poses, trans, poses_ai, trans_ai"),
        (
            {
                "poses": user[:, :100],
                "trans": user[:, :3],
                "poses_ai": user[:1],
                "trans_ai": user[:1, :3],
            },
            "poses must be (T,165) and trans (T,3)",
        ),
        (
            {
                "poses": nan_poses,
                "trans": user[:, :3],
                "poses_ai": user[:1],
                "trans_ai": user[:1, :3],
            },
            "hold NaN or infinite values",
        ),
    ):
        bad = io.BytesIO()
        np.savez(bad, **arrays)
        status, reply = stack.post_form(
            "/interact/",
            {"session_id": created["session_id"]},
            {"audio": ("q.wav", QUESTION.read_bytes()), "motion": ("m.npz", bad.getvalue())},
        )
        assert status == 422 and message in reply["detail"], reply
