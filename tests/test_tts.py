"""The tts service over a real in-process gRPC server: Piper voices heard back by the real
Whisper, streaming before the text is complete, contiguous time codes, Vocode on tiny
SoundStorm + SpeechTokenizer checkpoints, bad input."""

from __future__ import annotations

import dataclasses
import threading

import grpc
import numpy as np
import onnxruntime
import pytest
import torch

from services.asr.engine import AsrEngine
from services.asr.settings import AsrSettings
from services.tts.engine import TtsEngine
from services.tts.server import DEFINITION
from services.tts.settings import TtsSettings
from services.tts.voices import CHARACTER_VOICES, VOICES
from solami.client import sync_channel
from solami.v1 import tts_pb2, tts_pb2_grpc
from tests.support.servers import InProcessServer
from tests.support.speech import word_error_rate
from tests.support.tts_models import save_tiny_vocode_models
from tests.support.tts_streams import (
    median_pitch_hz,
    read_speech,
    synthesize_requests,
    vocode_requests,
)

SENTENCES = (
    "Hello there, it is so nice to meet you today.",
    "Would you like me to show you a little dance?",
)
THREE_SENTENCES = (
    "Hello there, my friend.",
    "I have been waiting for you all morning.",
    "Shall we go for a walk in the park?",
)
MAX_TEXT_CHARS = 300
# Largest sample-to-sample step accepted where two audio chunks meet (full scale is 1).
MAX_JOIN_STEP = 0.2


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    soundstorm_dir, speechtokenizer_dir = save_tiny_vocode_models(tmp_path_factory.mktemp("m"))
    torch_threads = torch.get_num_threads()
    settings = dataclasses.replace(
        TtsSettings(),
        host="127.0.0.1",
        port=0,
        metrics_port=-1,
        cpu_threads=1,
        max_text_chars=MAX_TEXT_CHARS,
        soundstorm_dir=soundstorm_dir,
        speechtokenizer_dir=speechtokenizer_dir,
    )
    # Piper's noise comes from random ops seeded when its session loads: fixed, the voices the
    # checks below hear are the same on every run.
    onnxruntime.set_seed(0)
    running = InProcessServer(DEFINITION, settings, TtsEngine(settings)).start()
    yield running
    running.stop()
    torch.set_num_threads(torch_threads)


@pytest.fixture(scope="module")
def stub(server):
    with sync_channel(server.address) as channel:
        yield tts_pb2_grpc.TtsServiceStub(channel)


@pytest.fixture(scope="module")
def whisper():
    engine = AsrEngine(AsrSettings())
    engine.load()
    return engine


def _twice_configured(pieces, **config):
    requests = synthesize_requests(pieces, **config)
    return requests[:1] + requests


def _speak(stub, pieces, **config):
    return read_speech(
        stub.Synthesize(iter(synthesize_requests(list(pieces), **config)), timeout=60)
    )


@pytest.mark.parametrize("character", list(CHARACTER_VOICES))
def test_every_character_voice_is_understood_by_whisper(stub, whisper, character):
    speech = _speak(stub, SENTENCES, character=character)
    transcript = whisper.transcribe(speech.samples, speech.sample_rate_hz).text
    assert word_error_rate(" ".join(SENTENCES), transcript) <= 0.2, transcript


@pytest.fixture(scope="module")
def espeak_stub():
    """The tts service on its light fallback backend, eSpeak NG."""
    settings = dataclasses.replace(
        TtsSettings(), host="127.0.0.1", port=0, metrics_port=-1, cpu_threads=1, backend="espeak"
    )
    running = InProcessServer(DEFINITION, settings, TtsEngine(settings)).start()
    with sync_channel(running.address) as channel:
        yield tts_pb2_grpc.TtsServiceStub(channel)
    running.stop()


@pytest.mark.parametrize("character", list(CHARACTER_VOICES))
def test_every_espeak_voice_is_understood_by_whisper(espeak_stub, whisper, character):
    speech = _speak(espeak_stub, SENTENCES, character=character)
    transcript = whisper.transcribe(speech.samples, speech.sample_rate_hz).text
    assert word_error_rate(" ".join(SENTENCES), transcript) <= 0.2, transcript


def test_characters_sound_different(stub):
    pitch = {}
    for character in ("User", "Samantha", "Batman", "Banaya"):
        speech = _speak(stub, SENTENCES, character=character)
        pitch[character] = median_pitch_hz(speech.samples, speech.sample_rate_hz)
    for character in ("Samantha", "Batman", "Banaya"):
        expected = VOICES[CHARACTER_VOICES[character]].pitch
        assert pitch[character] / pitch["User"] == pytest.approx(expected, rel=0.12), pitch


def test_first_audio_arrives_before_the_last_sentence_is_sent(stub):
    first_audio = threading.Event()
    sent_last_after_audio = []
    requests = synthesize_requests(list(THREE_SENTENCES), character="Samantha")

    def slowly():
        yield from requests[:3]  # config and two sentences
        sent_last_after_audio.append(first_audio.wait(timeout=30))
        yield from requests[3:]

    kinds = []
    for event in stub.Synthesize(slowly(), timeout=60):
        kinds.append(event.WhichOneof("event"))
        if kinds[-1] == "audio":
            first_audio.set()
    assert sent_last_after_audio == [True]
    assert kinds[0] == "header" and kinds[-1] == "end"


def test_streams_waiting_for_text_hold_no_worker_thread(stub):
    streams = 12  # more than the event loop's default thread pool on a small machine
    release = threading.Event()
    spoke = [threading.Event() for _ in range(streams)]

    def converse(i: int) -> None:
        requests = synthesize_requests(["Hi there."], character="User")

        def waiting():
            yield from requests[:2]
            release.wait(timeout=60)
            yield requests[2]

        for event in stub.Synthesize(waiting(), timeout=90):
            if event.WhichOneof("event") == "audio":
                spoke[i].set()

    threads = [threading.Thread(target=converse, args=(i,)) for i in range(streams)]
    for thread in threads:
        thread.start()
    try:
        assert all(event.wait(timeout=60) for event in spoke)
    finally:
        release.set()
        for thread in threads:
            thread.join(60)


@pytest.mark.parametrize("rate_hz", [0, 16_000, 44_100])
def test_chunks_are_contiguous_and_time_coded(stub, rate_hz):
    start_ms = 1_500
    speech = _speak(
        stub, THREE_SENTENCES, character="Link", sample_rate_hz=rate_hz, start_ms=start_ms
    )
    rate = speech.sample_rate_hz
    assert rate == (rate_hz or 22_050)
    position = round(start_ms * rate / 1000)
    joins = []
    for chunk in speech.chunks:
        assert chunk.start_sample == position
        assert abs(chunk.start_ms - position * 1000 / rate) <= 1
        size = len(chunk.data) // 2
        assert abs(chunk.duration_ms - size * 1000 / rate) <= 1
        joins.append(position - round(start_ms * rate / 1000))
        position += size
    assert speech.end.total_samples == position - round(start_ms * rate / 1000)
    assert abs(speech.end.total_ms - speech.duration_s * 1000) <= 1
    samples = speech.samples
    steps = np.abs(np.diff(samples))
    assert max(steps[j - 1] for j in joins[1:]) <= MAX_JOIN_STEP
    assert len(speech.chunks) >= 3


def test_timings_are_ordered_and_inside_the_audio(stub):
    start_ms = 2_000
    speech = _speak(stub, THREE_SENTENCES, character="Trump", start_ms=start_ms)
    end_ms = start_ms + speech.duration_s * 1000
    starts = [p.start_ms for p in speech.phonemes]
    assert starts == sorted(starts)
    assert all(start_ms <= p.start_ms <= p.end_ms <= end_ms + 1 for p in speech.phonemes)
    assert len([p for p in speech.phonemes if p.phoneme]) >= 40
    words = [w.word.lower() for w in speech.words]
    assert words[:4] == ["hello", "there", "my", "friend"]
    assert all(start_ms <= w.start_ms < w.end_ms <= end_ms + 1 for w in speech.words)


def test_empty_text_gives_empty_audio(stub):
    for pieces in ([], [""], ["   "], ["😀🎉"], ["你好，世界"]):
        speech = _speak(stub, pieces, character="Samantha")
        assert speech.kinds == ["header", "end"]
        assert speech.end.total_samples == 0


@pytest.mark.parametrize(
    "text",
    ["Привет, мир! Hello world.", "Ça va très bien, merci. Naïve café.", "東京 is big 🗼.",
     "Math: ∑ x² ≈ 3.5 × 10⁶ ± 2%!", "Tabs\tand\nnewlines are fine."],
)  # fmt: skip
def test_text_outside_the_voice_language_never_crashes(stub, text):
    speech = _speak(stub, [text], character="Batman")
    assert speech.end is not None and speech.duration_s > 0.3


@pytest.mark.parametrize(
    ("requests", "message"),
    [
        (synthesize_requests(["x" * (MAX_TEXT_CHARS + 1)], character="User"), "limit of 300"),
        (synthesize_requests(["a" * 200, "b" * 200], character="User"), "limit of 300"),
        (synthesize_requests(["Ring the bell\x07 now."], character="User"), "U+0007"),
        (synthesize_requests(["Hi."], character="Joker"), "unknown character 'Joker'"),
        (synthesize_requests(["Hi."], character="User", voice="opera"), "unknown voice"),
        (synthesize_requests(["Hi."]), "names no character"),
        (synthesize_requests(["Hi."], character="User", sample_rate_hz=96_000), "96000"),
        (synthesize_requests(["Hi."], character="User")[1:], "first message"),
        (_twice_configured(["Hi."], character="User"), "unexpected config"),
    ],
    ids=["piece-too-long", "stream-too-long", "control-char", "unknown-character",
         "unknown-voice", "no-character", "bad-rate", "no-config", "config-twice"],
)  # fmt: skip
def test_bad_text_requests_are_invalid_argument(stub, requests, message):
    with pytest.raises(grpc.RpcError) as error:
        list(stub.Synthesize(iter(requests), timeout=30))
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in error.value.details()
    assert _speak(stub, ["Still here."], character="User").duration_s > 0.3


def test_vocode_renders_fifty_units_per_second(stub):
    units = [int(u) for u in np.random.default_rng(0).integers(0, 1024, 50)]
    for chunks in ([units], [units[:20], units[20:]], [units[:1], units[1:7], units[7:]]):
        speech = read_speech(
            stub.Vocode(iter(vocode_requests(chunks, character="Batman")), timeout=60)
        )
        assert speech.sample_rate_hz == 16_000
        assert abs(speech.samples.size - 16_000) <= 320
        assert speech.end.total_samples == speech.samples.size
        assert np.all(np.isfinite(speech.samples))


def test_vocode_chunks_stream_as_they_arrive(stub):
    chunks = [[(7 * i + j) % 1024 for j in range(25)] for i in range(4)]
    speech = read_speech(
        stub.Vocode(
            iter(
                vocode_requests(chunks, character="Samantha", sample_rate_hz=24_000, start_ms=500)
            ),
            timeout=60,
        )
    )
    assert speech.sample_rate_hz == 24_000
    assert len(speech.chunks) >= 4
    assert speech.chunks[0].start_sample == 12_000
    assert abs(speech.duration_s - 2.0) <= 0.02


@pytest.mark.parametrize(
    ("requests", "message"),
    [
        (vocode_requests([[1, 2, 1024]], character="User"), "unit id 1024 is out of range"),
        (vocode_requests([[1, 2, 3]], character="Nobody"), "unknown character"),
    ],
)
def test_bad_vocode_requests_are_invalid_argument(stub, requests, message):
    with pytest.raises(grpc.RpcError) as error:
        list(stub.Vocode(iter(requests), timeout=30))
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in error.value.details()


def test_list_voices(stub):
    reply = stub.ListVoices(tts_pb2.ListVoicesRequest(), timeout=10)
    assert reply.backend == "piper"
    assert reply.vocode_available
    assert dict(reply.character_voices) == CHARACTER_VOICES
    piper = {v.name: v for v in reply.voices if v.backend == "piper"}
    assert set(piper) == set(VOICES)
    assert {v.sample_rate_hz for v in piper.values()} == {22_050}
    assert {v.sample_rate_hz for v in reply.voices if v.backend == "soundstorm"} == {16_000}


def test_cancelling_a_stream_leaves_the_service_serving(stub):
    call = stub.Synthesize(iter(synthesize_requests(list(THREE_SENTENCES) * 3, character="User")))
    for event in call:
        if event.WhichOneof("event") == "audio":
            call.cancel()
            break
    with pytest.raises(grpc.RpcError) as cancelled:
        list(call)
    assert cancelled.value.code() == grpc.StatusCode.CANCELLED
    assert _speak(stub, ["Still here."], character="User").duration_s > 0.3


def test_streams_are_measured_for_the_dashboard(server, stub):
    registry = server.host.metrics.registry

    def count(name: str, method: str) -> float:
        labels = {"method": method, "backend": server.host.engine.name}
        return registry.get_sample_value(f"{name}_count", labels) or 0.0

    rtf_before = count("solami_tts_real_time_factor", "synthesize")
    first_before = count("solami_tts_time_to_first_audio_seconds", "synthesize")
    speech = _speak(stub, SENTENCES, character="Samantha")
    assert speech.samples.size > 0
    assert count("solami_tts_real_time_factor", "synthesize") == rtf_before + 1
    assert count("solami_tts_time_to_first_audio_seconds", "synthesize") == first_before + 1
    rtf_sum = registry.get_sample_value(
        "solami_tts_real_time_factor_sum",
        {"method": "synthesize", "backend": server.host.engine.name},
    )
    assert 0 < rtf_sum < 100
