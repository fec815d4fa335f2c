"""face: the embedded lip-sync model's real-time factor and time to first frame over gRPC, its
agreement with the real UniTalker output for the reference reply, and the real-time factor of
the full-size UniTalker-B architecture on this CPU (random weights)."""

from __future__ import annotations

import dataclasses
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.common import percentile, repeat, report, timed
from services.face.backends.unitalker import save_random_unitalker
from services.face.backends.viseme import LOOKAHEAD_FRAMES
from services.face.backends.wav2vec import WAVLM_BASE_PLUS
from services.face.engine import FaceEngine
from services.face.features import WINDOW_S
from services.face.server import DEFINITION
from services.face.settings import FaceSettings
from solami import audio
from solami.avatar import face_npz as npz
from solami.avatar.face import INDEX, MOUTH_CHANNELS, indices
from solami.client import sync_channel
from solami.v1 import common_pb2, face_pb2, face_pb2_grpc
from tests.support.servers import InProcessServer
from tests.support.speech import ESPEAK_RATE_HZ, espeak

DATA = Path(__file__).resolve().parents[2] / "shared" / "solami-data"
REFERENCE_WAV = DATA / "audio" / "audio_ai.wav"
REFERENCE_NPZ = DATA / "face_data" / "face_ai.npz"
SENTENCE = "Hey, could you show me how to do a little dance? I would love to learn."
STREAM_RATE_HZ = 24_000
# Streamed chunk length, as a TTS sends it, in milliseconds.
CHUNK_MS = 20
WARM_RUNS = 20
STREAM_RUNS = 10
UNITALKER_AUDIO_S = 10.0
UNITALKER_RUNS = 3


def _embedded_rtf(engine: FaceEngine, samples: np.ndarray, rate: int) -> dict:
    runs = repeat(lambda: engine.animate(samples, rate), WARM_RUNS)
    seconds = len(samples) / rate
    return {
        "audio_s": round(seconds, 3),
        "p50_ms": round(statistics.median(runs) * 1000, 2),
        "rtf": round(statistics.median(runs) / seconds, 5),
    }


def _first_frame(stub: face_pb2_grpc.FaceServiceStub, pcm: bytes) -> tuple[float, float, int]:
    """Seconds from the first audio chunk to the first frame block, to the end, and frames."""
    chunk_bytes = STREAM_RATE_HZ * CHUNK_MS // 1000 * 2
    sent: list[float] = []
    header = common_pb2.AudioHeader(
        sample_rate_hz=STREAM_RATE_HZ, channels=1, encoding=common_pb2.AUDIO_ENCODING_PCM16
    )

    def messages():
        yield face_pb2.AnimateRequest(config=face_pb2.FaceConfig(audio=header))
        for start in range(0, len(pcm), chunk_bytes):
            sent.append(time.perf_counter())
            yield face_pb2.AnimateRequest(
                audio=common_pb2.AudioChunk(data=pcm[start : start + chunk_bytes])
            )
        yield face_pb2.AnimateRequest(end=common_pb2.StreamEnd())

    first = None
    for event in stub.Animate(messages(), timeout=60):
        if first is None and event.WhichOneof("event") == "frames":
            first = time.perf_counter()
        if event.WhichOneof("event") == "end":
            total = event.end.total_frames
    return first - sent[0], time.perf_counter() - sent[0], total


def _streamed(pcm: bytes) -> dict:
    settings = dataclasses.replace(FaceSettings(), host="127.0.0.1", port=0, metrics_port=-1)
    server = InProcessServer(DEFINITION, settings, FaceEngine(settings)).start()
    with sync_channel(server.address) as channel:
        stub = face_pb2_grpc.FaceServiceStub(channel)
        _first_frame(stub, pcm)
        results = [_first_frame(stub, pcm) for _ in range(STREAM_RUNS)]
    server.stop()
    firsts = [r[0] for r in results]
    return {
        "chunk_ms": CHUNK_MS,
        "first_frame_p50_ms": round(statistics.median(firsts) * 1000, 1),
        "first_frame_p95_ms": round(percentile(firsts, 95) * 1000, 1),
        "whole_stream_p50_ms": round(statistics.median(r[1] for r in results) * 1000, 1),
        "frames": results[0][2],
        "audio_before_first_frame_ms": round((LOOKAHEAD_FRAMES + 0.5) * 1000 / 30 + WINDOW_S * 500),
    }


def _reference_agreement(engine: FaceEngine) -> dict:
    samples, rate = audio.decode_wav(REFERENCE_WAV.read_bytes(), 60)
    ours = engine.animate(samples, rate)
    reference, _ = npz.read_npz(REFERENCE_NPZ)
    n = min(len(ours), len(reference))
    jaw = INDEX["JawOpen"]
    mouth = indices(MOUTH_CHANNELS)
    return {
        "frames_ours": len(ours),
        "frames_reference": len(reference),
        "jaw_open_pearson": round(float(np.corrcoef(ours[:n, jaw], reference[:n, jaw])[0, 1]), 3),
        "mouth_mae": round(float(np.abs(ours[:n, mouth] - reference[:n, mouth]).mean()), 4),
        "jaw_open_mae": round(float(np.abs(ours[:n, jaw] - reference[:n, jaw]).mean()), 4),
    }


def _unitalker_b() -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "unitalker-b-random.pt"
        save_random_unitalker(path, WAVLM_BASE_PLUS, decoder_dim=256, identities=8)
        settings = dataclasses.replace(FaceSettings(), backend="unitalker", unitalker_weights=path)
        engine = FaceEngine(settings)
        load_s, _ = timed(engine.load)
    rng = np.random.default_rng(0)
    samples = (0.1 * rng.standard_normal(int(UNITALKER_AUDIO_S * 16_000))).astype(np.float32)
    engine.animate(samples[:16_000], 16_000)
    runs = repeat(lambda: engine.animate(samples, 16_000), UNITALKER_RUNS)
    return {
        "audio_s": UNITALKER_AUDIO_S,
        "load_s": round(load_s, 2),
        "p50_s": round(statistics.median(runs), 3),
        "rtf": round(statistics.median(runs) / UNITALKER_AUDIO_S, 3),
    }


def main() -> None:
    engine = FaceEngine(FaceSettings())
    engine.load()
    engine.warmup()
    reference, rate = audio.decode_wav(REFERENCE_WAV.read_bytes(), 60)
    speech = espeak(SENTENCE)
    headset = np.zeros(10 * 44_100, np.float32)
    spoken = audio.resample(speech, ESPEAK_RATE_HZ, 44_100)
    headset[22_050 : 22_050 + len(spoken)] = spoken
    rtf_reference = _embedded_rtf(engine, reference, rate)
    rtf_headset = _embedded_rtf(engine, headset, 44_100)
    stream = _streamed(audio.float_to_pcm16(audio.resample(speech, ESPEAK_RATE_HZ, STREAM_RATE_HZ)))
    agreement = _reference_agreement(engine)
    unitalker = _unitalker_b()
    rows = [
        (
            f"viseme: RTF, reference reply ({rtf_reference['audio_s']:.1f} s, 24 kHz)",
            f"{rtf_reference['rtf']:.4f}",
        ),
        ("viseme: RTF, 10 s 44.1 kHz headset clip", f"{rtf_headset['rtf']:.4f}"),
        (
            f"viseme: first frame, streamed sentence ({CHUNK_MS} ms chunks, gRPC) p50 / p95",
            f"{stream['first_frame_p50_ms']:.1f} / {stream['first_frame_p95_ms']:.1f} ms",
        ),
        (
            "viseme: audio needed before the first frame",
            f"{stream['audio_before_first_frame_ms']} ms",
        ),
        (
            "viseme: jawOpen Pearson r vs UniTalker reference",
            f"{agreement['jaw_open_pearson']:.3f}",
        ),
        (
            "viseme: mouth-channel MAE vs reference (jawOpen MAE)",
            f"{agreement['mouth_mae']:.4f} ({agreement['jaw_open_mae']:.4f})",
        ),
        ("UniTalker-B full size (random weights): load", f"{unitalker['load_s']:.2f} s"),
        (f"UniTalker-B: RTF on {UNITALKER_AUDIO_S:.0f} s audio, CPU", f"{unitalker['rtf']:.3f}"),
    ]
    report(
        "face",
        rows,
        {
            "viseme_rtf_reference": rtf_reference,
            "viseme_rtf_headset": rtf_headset,
            "viseme_stream": stream,
            "reference_agreement": agreement,
            "unitalker_b_cpu": unitalker,
        },
    )


if __name__ == "__main__":
    main()
