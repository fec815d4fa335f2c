"""tts: time to first audio for a reply whose first sentence has 12 words, and real-time
factor, for Piper (2 and 1 CPU threads) and eSpeak NG through the real gRPC service; Vocode
throughput of the full-size SoundStorm + SpeechTokenizer decoder (random weights) on CPU; and a
6 s reply vocoded in one stream (what the relay does) against one stream per 1 s clip (what it
did before), in the same run: first audio, real-time factor and the seams between chunks, on
the full-size and the tiny test architectures."""

from __future__ import annotations

import dataclasses
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from bench.common import percentile, report, timed
from services.speechtokenizer import FULL_SIZE_CONFIG, save_random_speechtokenizer
from services.tts.backends.soundstorm import SoundStormConfig, save_random_soundstorm
from services.tts.engine import TtsEngine
from services.tts.server import DEFINITION
from services.tts.settings import TtsSettings
from services.tts.speech import Audio
from solami.avatar.rates import UNIT_RATE_HZ
from solami.client import sync_channel
from solami.v1 import tts_pb2_grpc
from tests.support.seams import MEASURES
from tests.support.servers import InProcessServer
from tests.support.tts_models import save_tiny_vocode_models
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
# The reply vocoded in one stream and in one stream per clip: 6 s in 1 s chunks (the relay's).
REPLY_UNITS = 6 * UNIT_RATE_HZ
REPLY_CHUNK_UNITS = UNIT_RATE_HZ
# Runs of each path, alternating (the machine is shared: the median of each is reported); the
# full-size models take minutes per run on CPU, so they get one.
TINY_REPLY_ROUNDS = 3
FULL_SIZE_REPLY_ROUNDS = 1


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


def _vocode_engine(soundstorm_dir: Path, speechtokenizer_dir: Path) -> tuple[TtsEngine, float]:
    settings = dataclasses.replace(
        TtsSettings(),
        soundstorm_dir=soundstorm_dir,
        speechtokenizer_dir=speechtokenizer_dir,
    )
    engine = TtsEngine(settings)
    load_s, _ = timed(engine.load)
    return engine, load_s


def _full_size_engine() -> tuple[TtsEngine, float]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        save_random_soundstorm(root / "soundstorm", SoundStormConfig(), "SoundStorm.pt")
        save_random_speechtokenizer(
            root / "speechtokenizer", FULL_SIZE_CONFIG, "SpeechTokenizer.pt"
        )
        return _vocode_engine(root / "soundstorm", root / "speechtokenizer")


def _tiny_engine() -> tuple[TtsEngine, float]:
    with tempfile.TemporaryDirectory() as tmp:
        return _vocode_engine(*save_tiny_vocode_models(Path(tmp)))


def _vocode_throughput(engine: TtsEngine, load_s: float) -> dict:
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


def _vocode_reply(engine: TtsEngine, one_stream: bool) -> tuple[dict, np.ndarray]:
    """The reply's units in chunks of ``REPLY_CHUNK_UNITS``, in one stream or one stream per
    chunk: first audio, real-time factor, the audio."""
    options = engine.options(CHARACTER, "", 0, 0, vocode=True)
    engine.open_vocode(options)  # the voice prompt is encoded once, before
    units = np.random.default_rng(1).integers(0, 1024, REPLY_UNITS)
    torch.manual_seed(0)
    parts: list[np.ndarray] = []
    first_s = None
    started = time.perf_counter()

    def take(events) -> None:
        nonlocal first_s
        for event in events:
            if isinstance(event, Audio) and event.samples.size:
                first_s = first_s if first_s is not None else time.perf_counter() - started
                parts.append(event.samples)

    stream = engine.open_vocode(options)
    for start in range(0, units.size, REPLY_CHUNK_UNITS):
        if not one_stream and start:
            take(stream.finish())
            stream = engine.open_vocode(options)
        take(stream.add(units[start : start + REPLY_CHUNK_UNITS]))
    take(stream.finish())
    elapsed = time.perf_counter() - started
    samples = np.concatenate(parts)
    audio_s = samples.size / options.sample_rate_hz
    return {"first_audio_s": first_s, "rtf": elapsed / audio_s, "audio_s": audio_s}, samples


def _seams(samples: np.ndarray, rate_hz: int) -> dict:
    per_chunk = rate_hz * REPLY_CHUNK_UNITS // UNIT_RATE_HZ
    seams = list(range(per_chunk, samples.size, per_chunk))
    figures = {}
    for name, measure in MEASURES.items():
        stats = measure(samples, seams)
        figures[name] = {
            "seam_median": float(np.median(stats.seams)),
            "seam_max": float(stats.seams.max()),
            "inside_median": float(np.median(stats.inside)),
            "inside_p99": float(np.percentile(stats.inside, 99)),
            "median_ratio": round(stats.median_ratio, 3),
            "worst_ratio": round(stats.worst_ratio, 3),
        }
    return figures


def _vocode_streams(engine: TtsEngine, rounds: int) -> dict:
    """One stream per reply against one stream per clip, alternating in the same run."""
    paths = {"one_stream": True, "stream_per_clip": False}
    runs: dict[str, list[dict]] = {name: [] for name in paths}
    samples: dict[str, np.ndarray] = {}
    for _ in range(rounds):
        for name, one_stream in paths.items():
            timing, samples[name] = _vocode_reply(engine, one_stream)
            runs[name].append(timing)
    rate = engine.options(CHARACTER, "", 0, 0, vocode=True).sample_rate_hz
    return {
        name: {
            "first_audio_s": round(statistics.median(r["first_audio_s"] for r in runs[name]), 3),
            "rtf": round(statistics.median(r["rtf"] for r in runs[name]), 3),
            "audio_s": round(runs[name][0]["audio_s"], 2),
            "rounds": rounds,
            "seams": _seams(samples[name], rate),
        }
        for name in paths
    }


def _stream_rows(label: str, streams: dict) -> list[tuple[str, str]]:
    one, per = streams["one_stream"], streams["stream_per_clip"]
    rows = [
        (
            f"Vocode {label}, 6 s reply: first audio, one stream / per clip",
            f"{one['first_audio_s']:.2f} / {per['first_audio_s']:.2f} s",
        ),
        (
            f"Vocode {label}, 6 s reply: RTF, one stream / per clip",
            f"{one['rtf']:.3f} / {per['rtf']:.3f}",
        ),
    ]
    for measure in MEASURES:
        a, b = one["seams"][measure], per["seams"][measure]
        rows.append(
            (
                f"Vocode {label}: {measure} seam/inside median, one stream / per clip",
                f"{a['median_ratio']:.2f} / {b['median_ratio']:.2f}",
            )
        )
    return rows


def main() -> None:
    results = [_text_backend("piper", 2), _text_backend("piper", 1), _text_backend("espeak", 1)]
    engine, load_s = _full_size_engine()
    vocode = _vocode_throughput(engine, load_s)
    streams = _vocode_streams(engine, FULL_SIZE_REPLY_ROUNDS)
    del engine
    tiny_streams = _vocode_streams(_tiny_engine()[0], TINY_REPLY_ROUNDS)
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
        *_stream_rows("full size", streams),
        *_stream_rows("tiny", tiny_streams),
    ]
    report(
        "tts",
        rows,
        {
            "reply": list(REPLY),
            "first_sentence_words": len(REPLY[0].split()),
            "text": results,
            "vocode_full_size_cpu": vocode,
            "vocode_reply_full_size_cpu": streams,
            "vocode_reply_tiny_cpu": tiny_streams,
        },
    )


if __name__ == "__main__":
    main()
