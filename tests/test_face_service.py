"""The face service over a real in-process gRPC server: streams, frames, bad input, the CLI."""

from __future__ import annotations

import dataclasses
import io
import itertools
import json

import grpc
import numpy as np
import pytest
import soundfile as sf

from services.face.backends.base import frame_count
from services.face.backends.unitalker import save_random_unitalker
from services.face.backends.wav2vec import EncoderConfig
from services.face.engine import FaceEngine
from services.face.server import DEFINITION
from services.face.settings import FaceSettings
from solami import audio
from solami.avatar import face_npz as npz
from solami.avatar.face import CHANNELS, INDEX
from solami.client import sync_channel
from solami.v1 import common_pb2, face_pb2, face_pb2_grpc
from tests.support.bad_audio import nan_wav, wav_header
from tests.support.face_speech import espeak_with_phonemes
from tests.support.servers import InProcessServer, finish, spawn
from tests.support.speech import ESPEAK_RATE_HZ, espeak

TINY_ENCODER = EncoderConfig(
    hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64, conv_dim=(16,) * 7,
    pos_conv_kernel=8, pos_conv_groups=4, num_buckets=16,
)  # fmt: skip
PCM16 = common_pb2.AUDIO_ENCODING_PCM16


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    weights = tmp_path_factory.mktemp("unitalker") / "unitalker-tiny.pt"
    save_random_unitalker(weights, TINY_ENCODER, decoder_dim=24, identities=3)
    settings = dataclasses.replace(
        FaceSettings(),
        host="127.0.0.1",
        port=0,
        metrics_port=-1,
        max_audio_s=20.0,
        unitalker_weights=weights,
    )
    running = InProcessServer(DEFINITION, settings, FaceEngine(settings)).start()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def stub(server):
    with sync_channel(server.address) as channel:
        yield face_pb2_grpc.FaceServiceStub(channel)


def _turn() -> common_pb2.TurnContext:
    return common_pb2.TurnContext(session_id="test", turn_id="t1")


def _config(rate_hz=16_000, encoding=PCM16, channels=1, backend="", start_frame=0):
    header = common_pb2.AudioHeader(sample_rate_hz=rate_hz, channels=channels, encoding=encoding)
    config = face_pb2.FaceConfig(audio=header, backend=backend, start_frame=start_frame)
    return face_pb2.AnimateRequest(turn=_turn(), config=config)


def _requests(data: bytes, chunk_bytes: int, timings=None, end=True, **config):
    yield _config(**config)
    if timings is not None:
        yield face_pb2.AnimateRequest(turn=_turn(), timings=timings)
    for start in range(0, len(data), chunk_bytes):
        chunk = common_pb2.AudioChunk(data=data[start : start + chunk_bytes])
        yield face_pb2.AnimateRequest(turn=_turn(), audio=chunk)
    if end:
        yield face_pb2.AnimateRequest(turn=_turn(), end=common_pb2.StreamEnd())


def _animate(stub, messages) -> tuple[list[face_pb2.FaceEvent], np.ndarray]:
    events = list(stub.Animate(messages, timeout=60))
    blocks = [
        np.array(e.frames.weights, np.float32).reshape(e.frames.n_frames, len(CHANNELS))
        for e in events
        if e.WhichOneof("event") == "frames"
    ]
    return events, np.concatenate(blocks) if blocks else np.zeros((0, len(CHANNELS)))


def test_stream_is_header_frames_end_with_time_codes(stub):
    speech = audio.resample(espeak("Nice to meet you."), ESPEAK_RATE_HZ, 24_000)
    pcm = audio.float_to_pcm16(speech)
    events, frames = _animate(stub, _requests(pcm, 4_800, rate_hz=24_000, start_frame=45))
    kinds = [e.WhichOneof("event") for e in events]
    assert kinds[0] == "header" and kinds[-1] == "end" and set(kinds[1:-1]) == {"frames"}
    header = events[0].header
    assert header.fps == 30 and tuple(header.channel_names) == CHANNELS
    assert header.backend == "viseme"
    assert all(e.turn.turn_id == "t1" for e in events)
    blocks = [e.frames for e in events[1:-1]]
    expected_total = frame_count(len(speech), 24_000)
    assert events[-1].end.total_frames == expected_total == len(frames)
    assert events[-1].end.audio_ms == round(len(speech) / 24)
    starts = [b.start_frame for b in blocks]
    assert starts[0] == 45 and starts == sorted(starts)
    for block, following in itertools.pairwise(blocks):
        assert following.start_frame == block.start_frame + block.n_frames
    assert all(b.start_ms == round(b.start_frame * 1000 / 30) for b in blocks)
    assert frames[:, INDEX["JawOpen"]].max() > 0.2
    assert np.all((frames >= 0) & (frames <= 1))


def test_chunk_sizes_and_encodings_do_not_change_the_frames(stub):
    speech = espeak("Can you show me how to wave my hand?")
    pcm = audio.float_to_pcm16(speech)
    _, whole = _animate(stub, _requests(pcm, len(pcm), rate_hz=ESPEAK_RATE_HZ))
    for chunk_bytes in (333, 1001, 8_820):  # odd sizes split sample frames
        _, streamed = _animate(stub, _requests(pcm, chunk_bytes, rate_hz=ESPEAK_RATE_HZ))
        np.testing.assert_array_equal(streamed, whole)
    wav = audio.encode_wav(speech, ESPEAK_RATE_HZ)
    _, from_wav = _animate(stub, _requests(wav, 5_000, encoding=common_pb2.AUDIO_ENCODING_WAV))
    # libsndfile rounds a few samples differently from float_to_pcm16: one LSB at most.
    np.testing.assert_allclose(from_wav, whole, atol=1e-3)
    samples, _ = sf.read(io.BytesIO(wav), dtype="float32")
    stereo = np.stack([samples, samples], axis=1).astype("<f4").tobytes()
    float32 = common_pb2.AUDIO_ENCODING_FLOAT32
    _, from_float = _animate(
        stub, _requests(stereo, 999, rate_hz=ESPEAK_RATE_HZ, encoding=float32, channels=2)
    )
    np.testing.assert_array_equal(from_float, from_wav)


def test_phoneme_timings_over_grpc(stub):
    samples, phonemes = espeak_with_phonemes("Pop music.")
    timings = common_pb2.SpeechTimings(
        phonemes=[
            common_pb2.PhonemeTiming(
                phoneme=p.symbol, start_ms=round(p.start_s * 1000), end_ms=round(p.end_s * 1000)
            )
            for p in phonemes
        ]
    )
    pcm = audio.float_to_pcm16(samples)
    _, with_timings = _animate(stub, _requests(pcm, 4_410, timings, rate_hz=ESPEAK_RATE_HZ))
    _, without = _animate(stub, _requests(pcm, 4_410, rate_hz=ESPEAK_RATE_HZ))
    assert with_timings.shape == without.shape
    press = INDEX["MouthPressLeft"]
    assert with_timings[:, press].max() > without[:, press].max()


def test_unitalker_backend_by_request(stub):
    pcm = audio.float_to_pcm16(espeak("Hello."))
    events, frames = _animate(
        stub, _requests(pcm, 2_000, rate_hz=ESPEAK_RATE_HZ, backend="unitalker")
    )
    assert events[0].header.backend == "unitalker"
    assert len(frames) == events[-1].end.total_frames == frame_count(len(pcm) // 2, ESPEAK_RATE_HZ)
    assert np.all(frames[:, INDEX["HeadYaw"] :] == 0)


WAV = common_pb2.AUDIO_ENCODING_WAV
ONE_SECOND = audio.float_to_pcm16(np.zeros(16_000, np.float32))


@pytest.mark.parametrize(
    ("messages", "message"),
    [
        (lambda: _requests(b"", 10, encoding=WAV), "empty"),
        (lambda: _requests(b"ID3\x03 an mp3", 10, encoding=WAV), "not a WAV"),
        (lambda: _requests(wav_header(16_000)[:30], 10, encoding=WAV), "truncated or malformed"),
        (lambda: _requests(wav_header(4_000) + bytes(32_000), 999, encoding=WAV), "4000 Hz"),
        (lambda: _requests(wav_header(96_000) + bytes(32_000), 999, encoding=WAV), "96000 Hz"),
        (lambda: _requests(nan_wav(), 4_096, encoding=WAV), "NaN"),
        (
            lambda: _requests(audio.encode_wav(np.zeros(21 * 8_000), 8_000), 1 << 16, encoding=WAV),
            "limit is 20 s",
        ),
        (lambda: _requests(ONE_SECOND * 21, 32_000), "longer than the limit of 20 s"),
        (lambda: _requests(ONE_SECOND, 4_000, rate_hz=4_000), "sample_rate_hz 4000"),
        (lambda: _requests(ONE_SECOND, 4_000, channels=3), "channels must be 1 or 2"),
        (lambda: _requests(ONE_SECOND, 4_000, encoding=0), "must set encoding"),
        (lambda: _requests(ONE_SECOND, 4_000, backend="audio2face"), "unknown backend"),
        (lambda: _requests(ONE_SECOND + b"\0", 4_000), "whole sample frames"),
        (lambda: _requests(ONE_SECOND, 4_000, end=False), "without an end message"),
        (lambda: iter(list(_requests(ONE_SECOND, 4_000))[1:]), "must start with a config"),
        (lambda: iter([_config(), _config()]), "one config message"),
    ],
    ids=[
        "empty", "mp3", "truncated", "4khz-wav", "96khz-wav", "nan", "too-long-wav",
        "too-long-pcm", "4khz-pcm", "3-channels", "no-encoding", "unknown-backend", "odd-bytes",
        "no-end", "no-config", "two-configs",
    ],
)  # fmt: skip
def test_bad_input_is_invalid_argument_and_the_service_survives(stub, messages, message):
    with pytest.raises(grpc.RpcError) as error:
        list(stub.Animate(messages(), timeout=30))
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in error.value.details()
    events, frames = _animate(stub, _requests(ONE_SECOND, 3_200))
    assert len(frames) == 30 and events[-1].end.total_frames == 30


def test_cli_animate_writes_the_original_npz_layout(server, tmp_path):
    wav = tmp_path / "reply.wav"
    wav.write_bytes(audio.encode_wav(espeak("See you soon."), ESPEAK_RATE_HZ))
    out = tmp_path / "face.npz"
    env = {"SOLAMI_FACE_ADDR": server.address}
    process = spawn(
        ["-m", "solami_cli", "call", "face", "animate", str(wav), "--out", str(out)], env
    )
    stdout, stderr = finish(process, 120)
    assert process.returncode == 0, stderr
    result = json.loads(stdout)
    assert result["fps"] == 30 and result["backend"] == "viseme"
    frames, codes = npz.read_npz(out)
    assert result["n_frames"] == len(frames) == len(codes) > 0
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"definitely not audio")
    process = spawn(["-m", "solami_cli", "call", "face", "animate", str(bad)], env)
    _, stderr = finish(process, 120)
    assert process.returncode == 1
    assert "INVALID_ARGUMENT" in stderr and "not a WAV" in stderr
