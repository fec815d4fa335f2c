"""asr: latency and real-time factor of a 3 s question inside a 10 s headset clip (VAD
included), cold and warm, per Whisper model; Tokenize throughput of the full-size
SpeechTokenizer architecture (random weights)."""

from __future__ import annotations

import dataclasses
import statistics
import tempfile
from pathlib import Path

import numpy as np

from bench.common import percentile, repeat, report, timed
from services.asr.engine import AsrEngine
from services.asr.server import DEFINITION
from services.asr.settings import AsrSettings
from services.speechtokenizer import FULL_SIZE_CONFIG, save_random_speechtokenizer
from solami import audio
from solami.client import sync_channel
from solami.v1 import asr_pb2, asr_pb2_grpc
from tests.support.servers import InProcessServer
from tests.support.speech import headset_clip

QUESTION = "Hey, could you show me how to do a little dance?"
HEADSET_RATE_HZ = 44_100
WARM_RUNS = 10
TOKENIZE_SECONDS = 10.0


def _whisper(model: str, wav: bytes, speech_s: float) -> dict:
    settings = dataclasses.replace(
        AsrSettings(), host="127.0.0.1", port=0, metrics_port=-1, whisper_model=model
    )
    server = InProcessServer(DEFINITION, settings, AsrEngine(settings))
    load_s, _ = timed(lambda: server.start())
    with sync_channel(server.address) as channel:
        stub = asr_pb2_grpc.AsrServiceStub(channel)

        def call() -> asr_pb2.TranscribeResponse:
            return stub.Transcribe(asr_pb2.TranscribeRequest(wav=wav), timeout=60)

        first_s, reply = timed(call)
        warm = repeat(call, WARM_RUNS)
    server.stop()
    return {
        "model": model,
        "load_and_warmup_s": round(load_s, 3),
        "first_request_s": round(first_s, 3),
        "warm_p50_s": round(statistics.median(warm), 3),
        "warm_p95_s": round(percentile(warm, 95), 3),
        "rtf_vs_speech": round(statistics.median(warm) / speech_s, 3),
        "rtf_vs_clip": round(statistics.median(warm) / 10.0, 3),
        "transcript": reply.text,
    }


def _tokenize_throughput() -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = Path(tmp)
        save_random_speechtokenizer(model_dir, FULL_SIZE_CONFIG, "SpeechTokenizer.pt")
        settings = dataclasses.replace(AsrSettings(), speechtokenizer_dir=model_dir, vad=False)
        engine = AsrEngine(settings)
        engine.load()
        engine.warmup()
        rng = np.random.default_rng(0)
        samples = (0.1 * rng.standard_normal(int(TOKENIZE_SECONDS * 16_000))).astype(np.float32)
        runs = repeat(lambda: engine.tokenize(samples, 16_000, 8, vad=False), 3)
    seconds = statistics.median(runs)
    return {
        "audio_s": TOKENIZE_SECONDS,
        "p50_s": round(seconds, 3),
        "x_real_time": round(TOKENIZE_SECONDS / seconds, 1),
    }


def main() -> None:
    wav, speech_s = headset_clip(QUESTION, HEADSET_RATE_HZ, lead_s=0.5)
    assert len(audio.decode_wav(wav, 60)[0]) == 10 * HEADSET_RATE_HZ
    results = [_whisper(model, wav, speech_s) for model in ("tiny.en", "base")]
    tokenize = _tokenize_throughput()
    rows = []
    for r in results:
        rows += [
            (f"{r['model']}: load + warm-up (cold start)", f"{r['load_and_warmup_s']:.2f} s"),
            (f"{r['model']}: first request", f"{r['first_request_s']:.3f} s"),
            (f"{r['model']}: warm p50 / p95", f"{r['warm_p50_s']:.3f} / {r['warm_p95_s']:.3f} s"),
            (f"{r['model']}: RTF (vs {speech_s:.1f} s speech)", f"{r['rtf_vs_speech']:.3f}"),
            (f"{r['model']}: transcript", repr(r["transcript"])),
        ]
    rows.append(
        ("SpeechTokenizer full size, 8 layers", f"{tokenize['x_real_time']:.1f}x real time")
    )
    report(
        "asr",
        rows,
        {
            "question": QUESTION,
            "speech_s": round(speech_s, 3),
            "whisper": results,
            "tokenize_full_size": tokenize,
        },
    )


if __name__ == "__main__":
    main()
