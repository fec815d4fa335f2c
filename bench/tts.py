"""tts: time to first audio for a reply whose first sentence has 12 words, and real-time
factor, for Piper (2 and 1 CPU threads) and eSpeak NG through the real gRPC service; Vocode
throughput of the full-size SoundStorm + SpeechTokenizer decoder (random weights) on CPU."""

from __future__ import annotations

import dataclasses
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.common import percentile, report, timed
from services.speechtokenizer import FULL_SIZE_CONFIG, save_random_speechtokenizer
from services.tts.backends.soundstorm import SoundStormConfig, save_random_soundstorm
from services.tts.engine import TtsEngine
from services.tts.server import DEFINITION
from services.tts.settings import TtsSettings
from solami.avatar.rates import UNIT_RATE_HZ
from solami.client import sync_channel
from solami.v1 import tts_pb2_grpc
from tests.support.servers import InProcessServer
from tests.support.tts_streams import synthesize_requests

REPLY = (
    "Hello there, I am glad you came to see me dance today.",
    "Let me show you a few of my favourite moves.",
    "Watch closely, and then you can try them with me.",
)
CHARACTER = "Samantha"
WARM_RUNS = 10
# Units per Vocode chunk and chunks per measured stream (one second each).
VOCODE_CHUNK_UNITS = 50
VOCODE_CHUNKS = 2


def _text_backend(backend: str, threads: int) -> dict:
    settings = dataclasses.replace(
        TtsSettings(),
        host="127.0.0.1",
        port=0,
        metrics_port=-1,
        backend=backend,
        cpu_threads=threads,
    )
    server = InProcessServer(DEFINITION, settings, TtsEngine(settings))
    load_s, _ = timed(lambda: server.start())
    first_audio, rtf = [], []
    with sync_channel(server.address) as channel:
        stub = tts_pb2_grpc.TtsServiceStub(channel)
        for _ in range(WARM_RUNS):
            started = time.perf_counter()
            first, end = None, None
            for event in stub.Synthesize(
                iter(synthesize_requests(list(REPLY), character=CHARACTER))
            ):
                kind = event.WhichOneof("event")
                if kind == "audio" and first is None:
                    first = time.perf_counter() - started
                elif kind == "end":
                    end = event.end
            elapsed = time.perf_counter() - started
            first_audio.append(first)
            rtf.append(elapsed / (end.total_ms / 1000))
    server.stop()
    return {
        "backend": backend,
        "cpu_threads": threads,
        "load_and_warmup_s": round(load_s, 3),
        "first_audio_p50_ms": round(statistics.median(first_audio) * 1000, 1),
        "first_audio_p95_ms": round(percentile(first_audio, 95) * 1000, 1),
        "rtf_p50": round(statistics.median(rtf), 4),
        "audio_s": round(end.total_ms / 1000, 2),
    }


def _vocode_throughput() -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        save_random_soundstorm(root / "soundstorm", SoundStormConfig(), "SoundStorm.pt")
        save_random_speechtokenizer(
            root / "speechtokenizer", FULL_SIZE_CONFIG, "SpeechTokenizer.pt"
        )
        settings = dataclasses.replace(
            TtsSettings(),
            soundstorm_dir=root / "soundstorm",
            speechtokenizer_dir=root / "speechtokenizer",
        )
        engine = TtsEngine(settings)
        load_s, _ = timed(engine.load)
    options = engine.options(CHARACTER, "", 0, 0, vocode=True)
    prompt_s, stream = timed(lambda: engine.open_vocode(options))
    units = np.random.default_rng(0).integers(0, 1024, VOCODE_CHUNK_UNITS * VOCODE_CHUNKS)
    started = time.perf_counter()
    first_s, _ = timed(lambda: stream.add(units[:VOCODE_CHUNK_UNITS]))
    for start in range(VOCODE_CHUNK_UNITS, units.size, VOCODE_CHUNK_UNITS):
        stream.add(units[start : start + VOCODE_CHUNK_UNITS])
    total = stream.finish()[-1].total_s
    elapsed = time.perf_counter() - started
    return {
        "load_s": round(load_s, 2),
        "prompt_encode_s": round(prompt_s, 2),
        "audio_s": round(total, 2),
        "first_chunk_s": round(first_s, 2),
        "compute_s": round(elapsed, 2),
        "x_real_time": round(total / elapsed, 3),
        "units_per_s": round(units.size / elapsed, 1),
        "unit_rate_hz": UNIT_RATE_HZ,
    }


def main() -> None:
    results = [_text_backend("piper", 2), _text_backend("piper", 1), _text_backend("espeak", 1)]
    vocode = _vocode_throughput()
    rows = []
    for r in results:
        name = f"{r['backend']} ({r['cpu_threads']} thread{'s' if r['cpu_threads'] > 1 else ''})"
        rows += [
            (f"{name}: load + warm-up", f"{r['load_and_warmup_s']:.2f} s"),
            (
                f"{name}: first audio p50 / p95",
                f"{r['first_audio_p50_ms']:.0f} / {r['first_audio_p95_ms']:.0f} ms",
            ),
            (f"{name}: RTF p50 ({r['audio_s']:.1f} s reply)", f"{r['rtf_p50']:.3f}"),
        ]
    rows += [
        ("Vocode full size: load (SoundStorm 351M + decoder)", f"{vocode['load_s']:.1f} s"),
        ("Vocode full size: voice prompt encode (once)", f"{vocode['prompt_encode_s']:.2f} s"),
        ("Vocode full size: first 1 s chunk", f"{vocode['first_chunk_s']:.1f} s"),
        ("Vocode full size: throughput", f"{vocode['x_real_time']:.3f}x real time"),
    ]
    report(
        "tts",
        rows,
        {
            "reply": list(REPLY),
            "first_sentence_words": len(REPLY[0].split()),
            "text": results,
            "vocode_full_size_cpu": vocode,
        },
    )


if __name__ == "__main__":
    main()
