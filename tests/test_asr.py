"""The asr service with its real models over a real in-process gRPC server."""

from __future__ import annotations

import dataclasses
import io

import grpc
import numpy as np
import pytest
import soundfile as sf

from services.asr.engine import AsrEngine
from services.asr.server import DEFINITION
from services.asr.settings import AsrSettings
from services.speechtokenizer import FULL_SIZE_CONFIG, save_random_speechtokenizer
from solami import audio
from solami.client import sync_channel
from solami.v1 import asr_pb2, asr_pb2_grpc, common_pb2
from tests.support.bad_audio import inf_wav, nan_wav, wav_header
from tests.support.servers import InProcessServer, finish
from tests.support.speech import headset_clip, word_error_rate

SENTENCES = (
    "Hello there, how are you doing today?",
    "Can you show me how to wave my hand?",
    "Please remind me to call my mother tomorrow morning.",
)
TINY_SPEECHTOKENIZER = dict(
    FULL_SIZE_CONFIG, n_filters=8, dimension=32, semantic_dimension=16, lstm_layers=1
)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    model_dir = tmp_path_factory.mktemp("speechtokenizer")
    save_random_speechtokenizer(model_dir, TINY_SPEECHTOKENIZER, "SpeechTokenizer.pt")
    settings = dataclasses.replace(
        AsrSettings(),
        host="127.0.0.1",
        port=0,
        metrics_port=-1,
        max_audio_s=20.0,
        speechtokenizer_dir=model_dir,
        cache_dir=tmp_path_factory.mktemp("cache"),
    )
    running = InProcessServer(DEFINITION, settings, AsrEngine(settings)).start()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def stub(server):
    with sync_channel(server.address) as channel:
        yield asr_pb2_grpc.AsrServiceStub(channel)


def _turn(turn_id: str = "t1") -> common_pb2.TurnContext:
    return common_pb2.TurnContext(session_id="test", turn_id=turn_id)


@pytest.mark.parametrize("rate_hz", [8_000, 22_050, 44_100])
def test_headset_clips_transcribe_with_low_word_error_rate(stub, rate_hz):
    errors = []
    for sentence in SENTENCES:
        wav, speech_s = headset_clip(sentence, rate_hz)
        reply = stub.Transcribe(asr_pb2.TranscribeRequest(turn=_turn(), wav=wav), timeout=60)
        errors.append(word_error_rate(sentence, reply.text))
        assert reply.audio_duration_s == pytest.approx(10.0, abs=0.01)
        assert reply.speech_duration_s == pytest.approx(speech_s, abs=0.3)
        assert reply.segments and reply.segments[0].start_ms >= 300  # offset of the lead-in
        assert reply.turn.turn_id == "t1"
        assert reply.language == "en"
    assert np.mean(errors) <= 0.25, errors


def test_word_timings_are_ordered_and_inside_the_speech(stub):
    wav, speech_s = headset_clip(SENTENCES[0], 16_000, lead_s=1.0)
    reply = stub.Transcribe(
        asr_pb2.TranscribeRequest(turn=_turn(), wav=wav, word_timestamps=True), timeout=60
    )
    words = [w for s in reply.segments for w in s.words]
    assert len(words) >= 5
    starts = [w.start_ms for w in words]
    assert starts == sorted(starts)
    assert words[0].start_ms >= 700 and words[-1].end_ms <= (1.0 + speech_s) * 1000 + 400


def test_stereo_float_wav_is_accepted(stub):
    wav, _ = headset_clip(SENTENCES[1], 48_000, total_s=5.0)
    samples, rate = sf.read(io.BytesIO(wav), dtype="float32")
    buffer = io.BytesIO()
    sf.write(buffer, np.stack([samples, samples], axis=1), rate, subtype="FLOAT", format="WAV")
    reply = stub.Transcribe(asr_pb2.TranscribeRequest(wav=buffer.getvalue()), timeout=60)
    assert word_error_rate(SENTENCES[1], reply.text) <= 0.25


def test_silence_gives_an_empty_transcript(stub):
    wav = audio.encode_wav(np.zeros(10 * 44_100, dtype=np.float32), 44_100)
    reply = stub.Transcribe(asr_pb2.TranscribeRequest(wav=wav), timeout=60)
    assert reply.text == ""
    assert reply.speech_duration_s == 0.0


def test_streaming_final_equals_whole_file_result(stub):
    wav, _ = headset_clip(SENTENCES[2], 16_000, total_s=6.0)
    whole = stub.Transcribe(asr_pb2.TranscribeRequest(turn=_turn(), wav=wav), timeout=60)
    samples, _ = audio.decode_wav(wav, 60)
    pcm = audio.float_to_pcm16(samples)
    header = common_pb2.AudioHeader(
        sample_rate_hz=16_000, channels=1, encoding=common_pb2.AUDIO_ENCODING_PCM16
    )

    def messages():
        yield common_pb2.AudioInput(turn=_turn("s1"), header=header)
        step = 3_200 * 2  # 200 ms chunks
        for start in range(0, len(pcm), step):
            chunk = common_pb2.AudioChunk(data=pcm[start : start + step], start_ms=start // 32)
            yield common_pb2.AudioInput(turn=_turn("s1"), chunk=chunk)
        yield common_pb2.AudioInput(turn=_turn("s1"), end=common_pb2.AudioEnd())

    events = list(stub.StreamTranscribe(messages(), timeout=60))
    final = events[-1]
    assert final.WhichOneof("event") == "final"
    assert final.turn.turn_id == "s1"
    assert final.final.text == whole.text
    partials = [e for e in events[:-1] if e.WhichOneof("event") == "partial"]
    assert partials, "a 6 s stream produces at least one partial result"


def test_tokenize_gives_fifty_units_per_second(stub):
    for seconds in (1.0, 2.37, 4.0):
        noise = (0.1 * np.random.default_rng(1).standard_normal(int(seconds * 22_050))).astype(
            np.float32
        )
        wav = audio.encode_wav(noise, 22_050)
        reply = stub.Tokenize(
            asr_pb2.TokenizeRequest(turn=_turn(), wav=wav, skip_vad=True), timeout=60
        )
        assert reply.frame_rate_hz == 50
        assert len(reply.layers) == 1
        units = list(reply.layers[0].ids)
        assert abs(len(units) - round(seconds * 50)) <= 1
        assert all(0 <= u < 1024 for u in units)


def test_tokenize_all_eight_layers(stub):
    wav = audio.encode_wav(np.random.default_rng(2).standard_normal(16_000) * 0.1, 16_000)
    reply = stub.Tokenize(asr_pb2.TokenizeRequest(wav=wav, num_layers=8, skip_vad=True), timeout=60)
    assert [layer.index for layer in reply.layers] == list(range(8))
    assert {len(layer.ids) for layer in reply.layers} == {50}


@pytest.mark.parametrize(
    ("wav", "message"),
    [
        (b"", "empty"),
        (b"ID3\x03\x00 this is an mp3", "not a WAV"),
        (wav_header(16_000)[:30], "truncated or malformed"),
        (wav_header(16_000)[:40], "truncated or malformed"),
        (wav_header(4_000) + bytes(32_000), "sample rate 4000 Hz is not supported"),
        (wav_header(96_000) + bytes(32_000), "sample rate 96000 Hz is not supported"),
        (nan_wav(), "NaN"),
        (inf_wav(), "infinite"),
        (audio.encode_wav(np.zeros(21 * 16_000, dtype=np.float32), 16_000), "limit is 20 s"),
    ],
    ids=[
        "empty",
        "mp3",
        "truncated-riff",
        "truncated-fmt",
        "4khz",
        "96khz",
        "nan",
        "inf",
        "too-long",
    ],
)
def test_bad_audio_is_invalid_argument_and_the_service_survives(stub, wav, message):
    for call in (
        lambda: stub.Transcribe(asr_pb2.TranscribeRequest(wav=wav), timeout=30),
        lambda: stub.Tokenize(asr_pb2.TokenizeRequest(wav=wav), timeout=30),
    ):
        with pytest.raises(grpc.RpcError) as error:
            call()
        assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert message in error.value.details()
    ok = audio.encode_wav(np.zeros(16_000, dtype=np.float32), 16_000)
    assert stub.Transcribe(asr_pb2.TranscribeRequest(wav=ok), timeout=30).text == ""


def test_malformed_streams_are_invalid_argument(stub):
    chunk_first = [common_pb2.AudioInput(chunk=common_pb2.AudioChunk(data=b"\0\0"))]
    no_end = [
        common_pb2.AudioInput(
            header=common_pb2.AudioHeader(
                sample_rate_hz=16_000, channels=1, encoding=common_pb2.AUDIO_ENCODING_PCM16
            )
        )
    ]
    odd_bytes = [*no_end, common_pb2.AudioInput(chunk=common_pb2.AudioChunk(data=b"\0\0\0"))]
    odd_bytes.append(common_pb2.AudioInput(end=common_pb2.AudioEnd()))
    # A WAV stream's length is known only once whole: its bytes are capped while it arrives.
    endless_wav = [
        common_pb2.AudioInput(
            header=common_pb2.AudioHeader(encoding=common_pb2.AUDIO_ENCODING_WAV)
        ),
        *[common_pb2.AudioInput(chunk=common_pb2.AudioChunk(data=bytes(1 << 20)))] * 9,
    ]
    for messages, message in (
        (chunk_first, "must start with a header"),
        (no_end, "without an end message"),
        (odd_bytes, "whole sample frames"),
        (endless_wav, "longer than the limit of 20 s"),
    ):
        with pytest.raises(grpc.RpcError) as error:
            list(stub.StreamTranscribe(iter(messages), timeout=30))
        assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert message in error.value.details()


def test_language_unsupported_by_english_model(stub):
    wav, _ = headset_clip(SENTENCES[0], 16_000, total_s=4.0)
    with pytest.raises(grpc.RpcError) as error:
        stub.Transcribe(asr_pb2.TranscribeRequest(wav=wav, language="fr"), timeout=30)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "English-only" in error.value.details()


def test_cli_transcribe_and_bad_file(server, tmp_path):
    from tests.support.servers import spawn

    wav, _ = headset_clip(SENTENCES[0], 44_100)
    good = tmp_path / "question.wav"
    good.write_bytes(wav)
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"definitely not audio")
    env = {"SOLAMI_ASR_ADDR": server.address}
    process = spawn(["-m", "solami_cli", "call", "asr", "transcribe", str(good)], env)
    out, err = finish(process, 120)
    assert process.returncode == 0, err
    import json

    result = json.loads(out)
    assert set(result) >= {"text", "language", "segments", "duration_s"}
    assert word_error_rate(SENTENCES[0], result["text"]) <= 0.25
    process = spawn(["-m", "solami_cli", "call", "asr", "tokenize", str(good)], env)
    out, err = finish(process, 120)
    assert process.returncode == 0, err
    units = json.loads(out)["units"]
    # as many units as the VAD-trimmed speech lasts, at 50 per second
    assert abs(len(units) - round(result["speech_duration_s"] * 50)) <= 2, len(units)
    assert all(0 <= u < 1024 for u in units)
    process = spawn(["-m", "solami_cli", "call", "asr", "tokenize", str(bad)], env)
    out, err = finish(process, 120)
    assert process.returncode == 1
    assert "INVALID_ARGUMENT" in err and "not a WAV" in err
