"""The echo profile (a benchmarking profile, never for users): each service's ``echo`` backend,
chosen by its ``SOLAMI_<SERVICE>_BACKEND`` setting, serves through the real service over gRPC
with valid, cheap output."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from services.asr import server as asr_server
from services.asr.backends.echo import ECHO_TRANSCRIPT
from services.asr.engine import AsrEngine
from services.asr.settings import AsrSettings
from services.face import server as face_server
from services.face.engine import FaceEngine
from services.face.settings import FaceSettings
from services.llm import server as llm_server
from services.llm.backends.echo import ECHO_MOTION, ECHO_SPEECH
from services.llm.engine import LlmEngine
from services.llm.settings import LlmSettings
from services.tts import server as tts_server
from services.tts.backends.echo import SECONDS_PER_CHAR
from services.tts.engine import TtsEngine
from services.tts.settings import TtsSettings
from solami import audio
from solami.avatar.face import CHANNEL_COUNT
from solami.client import sync_channel
from solami.settings import load_settings
from solami.v1 import (
    asr_pb2,
    asr_pb2_grpc,
    common_pb2,
    face_pb2,
    face_pb2_grpc,
    llm_pb2,
    llm_pb2_grpc,
    tts_pb2_grpc,
)
from tests.support.servers import InProcessServer
from tests.support.tts_streams import read_speech, synthesize_requests

QUESTION = Path(__file__).resolve().parents[1] / "solami_cli" / "data" / "question.wav"
TURN = common_pb2.TurnContext(session_id="test", turn_id="t1")
ECHO_ENV = {f"SOLAMI_{name}_BACKEND": "echo" for name in ("ASR", "LLM", "TTS", "FACE")}


def _serve(definition, settings_type, engine_type, prefix: str):
    """The service as ``SOLAMI_<prefix>_BACKEND=echo`` configures it, on port 0."""
    settings = load_settings(settings_type, f"SOLAMI_{prefix}_", ECHO_ENV)
    settings = dataclasses.replace(settings, host="127.0.0.1", port=0, metrics_port=-1)
    return InProcessServer(definition, settings, engine_type(settings)).start()


@pytest.fixture(scope="module")
def channels():
    servers = [
        _serve(asr_server.DEFINITION, AsrSettings, AsrEngine, "ASR"),
        _serve(llm_server.DEFINITION, LlmSettings, LlmEngine, "LLM"),
        _serve(tts_server.DEFINITION, TtsSettings, TtsEngine, "TTS"),
        _serve(face_server.DEFINITION, FaceSettings, FaceEngine, "FACE"),
    ]
    opened = [sync_channel(s.address) for s in servers]
    yield dict(zip(("asr", "llm", "tts", "face"), opened, strict=True))
    for channel in opened:
        channel.close()
    for server in servers:
        server.stop()


def test_asr_echo_gives_the_fixed_transcript(channels):
    stub = asr_pb2_grpc.AsrServiceStub(channels["asr"])
    request = asr_pb2.TranscribeRequest(turn=TURN, wav=QUESTION.read_bytes(), word_timestamps=True)
    reply = stub.Transcribe(request, timeout=30)
    assert reply.text == ECHO_TRANSCRIPT
    words = [w for s in reply.segments for w in s.words]
    assert [w.word.strip() for w in words] == ECHO_TRANSCRIPT.split()
    assert all(0 <= w.start_ms <= w.end_ms <= reply.audio_duration_s * 1000 + 1 for w in words)


def test_llm_echo_streams_sentences_and_motion_like_an_agent_reply(channels):
    stub = llm_pb2_grpc.LlmServiceStub(channels["llm"])
    request = llm_pb2.GenerateRequest(
        turn=TURN,
        character="Batman",
        method=llm_pb2.CONVERSATION_METHOD_DLP_RETRIEVAL,
        user=llm_pb2.Message(role=llm_pb2.ROLE_USER, text="Hello there!"),
    )
    events = list(stub.Generate(request, timeout=30))
    kinds = [e.WhichOneof("event") for e in events]
    assert kinds[0] == "header" and kinds[-1] == "end"
    assert events[0].header.engine == "echo"
    assert kinds.count("text") > 5  # streamed piece by piece, not in one message
    sentences = [e.sentence.text for e in events if e.HasField("sentence")]
    assert len(sentences) == 2 and " ".join(sentences) == ECHO_SPEECH
    reply = events[-1].end.reply
    assert reply.speech == ECHO_SPEECH and reply.motion == ECHO_MOTION


def test_tts_echo_speaks_audio_as_long_as_its_text(channels):
    stub = tts_pb2_grpc.TtsServiceStub(channels["tts"])
    short, long = "Hello there.", "Hello there, it is a lovely day and I am glad to see you."

    def speak(text: str):
        requests = synthesize_requests([text], character="Samantha")
        return read_speech(stub.Synthesize(iter(requests), timeout=30))

    first, second = speak(short), speak(long)
    for text, speech in ((short, first), (long, second)):
        assert speech.kinds[0] == "header" and speech.kinds[-1] == "end"
        assert speech.duration_s == pytest.approx(len(text) * SECONDS_PER_CHAR, rel=0.25)
        assert 0 < np.abs(speech.samples).max() < 0.5
        assert speech.words
    # the audio makes a valid WAV for the headset
    wav = audio.encode_wav(second.samples, second.sample_rate_hz)
    samples, rate = audio.decode_wav(wav, 60.0)
    assert rate == second.sample_rate_hz and len(samples) == len(second.samples)


def test_face_echo_gives_neutral_frames_for_the_whole_clip(channels):
    stub = face_pb2_grpc.FaceServiceStub(channels["face"])
    rate = 16_000
    pcm = audio.float_to_pcm16(np.zeros(int(1.5 * rate), np.float32))
    header = common_pb2.AudioHeader(
        sample_rate_hz=rate, channels=1, encoding=common_pb2.AUDIO_ENCODING_PCM16
    )

    def requests():
        yield face_pb2.AnimateRequest(turn=TURN, config=face_pb2.FaceConfig(audio=header))
        for start in range(0, len(pcm), 3_200):
            chunk = common_pb2.AudioChunk(data=pcm[start : start + 3_200])
            yield face_pb2.AnimateRequest(turn=TURN, audio=chunk)
        yield face_pb2.AnimateRequest(turn=TURN, end=common_pb2.StreamEnd())

    events = list(stub.Animate(requests(), timeout=30))
    assert events[0].header.backend == "echo"
    weights = [w for e in events if e.HasField("frames") for w in e.frames.weights]
    frames = np.array(weights, np.float32).reshape(-1, CHANNEL_COUNT)
    assert len(frames) == events[-1].end.total_frames == 45
    assert not frames.any()


@pytest.mark.e2e
def test_load_bench_runs_on_the_echo_profile():
    """A smoke run of ``python -m bench load``'s relay part: real processes, real Redis and
    WebSockets, 1 and 2 headsets, windows of a few seconds."""
    from bench import load

    levels = load.run_echo((1, 2), idle_s=1.0, talk_s=3.0, warmup_s=1.0)
    assert [level["headsets"] for level in levels] == [1, 2]
    for level in levels:
        for phase in ("idle", "talking"):
            figures = level[phase]
            assert figures["relay_cores"] > 0
            assert figures["fps_min"] > 15  # 30 fps, with room for a busy machine
            assert figures["gap_p99_ms"] is not None
        assert level["turns_answered"] >= 1 and level["first_reply_wav_ms_p50"] > 0
