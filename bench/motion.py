"""motion: full-size body + hand tokenizers (random weights, loaded from a checkpoint directory)
decoding and encoding 64 tokens (256 frames), one-shot and streamed; TextToMotion latency over
gRPC with the real library and all-MiniLM-L6-v2, warm; retrieval over a built library of
40,000 clips (random unit 384-dim embeddings, memory-mapped like a built library) and the
build time per 1,000 small synthetic clips (real MiniLM embeddings); CaptionMotion latency over
gRPC on the authored clips and in the engine over 40,000 clip descriptors, the held-out accuracy
of the captioner on perturbed authored clips and how often it says nothing to idle or standing
bodies."""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from bench.common import percentile, repeat, report, timed
from services.motion import features, library_build
from services.motion.backends.checkpoints import random_tokenizers, save_tokenizers
from services.motion.backends.retrieval import TextEmbedder, top1
from services.motion.captioner import (
    AUTHORED_CAPTIONS,
    DESCRIPTOR_DIMS,
    LibraryCaptioner,
    describe,
    describe_built,
)
from services.motion.engine import MotionEngine
from services.motion.features import Motion
from services.motion.library import BuiltLibrary, MotionLibrary
from services.motion.server import DEFINITION
from services.motion.settings import MotionSettings
from services.motion.skeleton import BUILT_IN
from solami.avatar.rates import FPS, FRAMES_PER_TOKEN
from solami.client import sync_channel
from solami.v1 import motion_pb2, motion_pb2_grpc
from tests.support.motion_perturb import moved, noised, sub_window, time_warp
from tests.support.servers import InProcessServer

TOKENS = 64
STREAM_CHUNK_TOKENS = 8
RUNS = 5
TEXT_RUNS = 30
TEXT_SECONDS = 3.0
PHRASES = (
    "wave hello to me", "take a bow", "let me think about it", "nod in agreement",
    "dance with me", "point over there", "clap for them", "shrug, who knows",
    "celebrate the win", "shake your head no",
)  # fmt: skip


def _checkpoint(directory: Path) -> None:
    """Full-size random tokenizers with the library's feature statistics."""
    clips = MotionLibrary.load().clips.values()
    feats = np.concatenate([features.features_of(c.motion, BUILT_IN)[0] for c in clips])
    tokenizers = random_tokenizers()
    stats = dataclasses.replace(
        tokenizers.stats, motion_mean=feats.mean(0), motion_std=np.maximum(feats.std(0), 1e-3)
    )
    save_tokenizers(directory, dataclasses.replace(tokenizers, stats=stats))


@contextlib.contextmanager
def _busy_core() -> Iterator[None]:
    """Another process keeping one core busy (as the other services of a small host do)."""
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.5)
        yield
    finally:
        busy.kill()
        busy.wait()


def _streamed(engine: MotionEngine, body: np.ndarray, hand: np.ndarray) -> int:
    session = engine.decode_session()
    frames = 0
    for start in range(0, len(body), STREAM_CHUNK_TOKENS):
        piece = session.push(
            body[start : start + STREAM_CHUNK_TOKENS].tolist(),
            hand[start : start + STREAM_CHUNK_TOKENS].tolist(),
        )
        frames += piece.n_frames if piece is not None else 0
    last = session.finish()
    return frames + (last.n_frames if last is not None else 0)


def _tokenizers(directory: Path) -> dict:
    _checkpoint(directory)
    settings = dataclasses.replace(MotionSettings(), checkpoint_dir=directory)
    engine = MotionEngine(settings)
    load_s, _ = timed(lambda: (engine.load(), engine.warmup()))
    codec = engine.codec
    seconds = TOKENS * FRAMES_PER_TOKEN / FPS
    rng = np.random.default_rng(0)
    body, hand = rng.integers(0, 512, TOKENS), rng.integers(0, 512, TOKENS)
    decode = repeat(lambda: codec.decode(body, hand), RUNS)
    with _busy_core():
        contended = repeat(lambda: codec.decode(body, hand), RUNS)
    stream = repeat(lambda: _streamed(engine, body, hand), RUNS)
    assert _streamed(engine, body, hand) == TOKENS * FRAMES_PER_TOKEN
    clip = engine.text_to_motion("dance", (TOKENS * FRAMES_PER_TOKEN + 1) / FPS).motion
    encode = repeat(lambda: engine.encode_user_motion(clip, None), RUNS)
    assert len(engine.encode_user_motion(clip, None).body_ids) == TOKENS
    return {
        "tokens": TOKENS,
        "motion_s": round(seconds, 3),
        "load_and_warmup_s": round(load_s, 2),
        "decode_p50_s": round(statistics.median(decode), 4),
        "decode_x_real_time": round(seconds / statistics.median(decode), 1),
        "decode_one_core_busy_p50_s": round(statistics.median(contended), 4),
        "decode_one_core_busy_x_real_time": round(seconds / statistics.median(contended), 1),
        "stream_decode_p50_s": round(statistics.median(stream), 4),
        "stream_x_real_time": round(seconds / statistics.median(stream), 1),
        "encode_p50_s": round(statistics.median(encode), 4),
        "encode_x_real_time": round(seconds / statistics.median(encode), 1),
    }


def _phrase(i: int, unique: bool) -> str:
    """A motion phrase; unique ones miss the query-embedding cache."""
    phrase = PHRASES[i % len(PHRASES)]
    return f"{phrase} (take {i})" if unique else phrase


CAPTION_SEED = 2026
HELD_OUT_PER_CLIP = 20
STILL_CASES = 20
CAPTION_CLIPS = 40_000


def _held_out(rng: np.random.Generator) -> list[tuple[str, Motion]]:
    """Perturbed versions of the authored gestures, drawn with another seed and wider ranges
    than the tests': 0.7x-1.4x speed, 60-100 % of the clip, another performer's bias with
    capture jitter, anywhere in the room facing any way."""
    out = []
    for name, clip in MotionLibrary.load().clips.items():
        if name == "idle":
            continue
        for _ in range(HELD_OUT_PER_CLIP):
            motion = time_warp(clip.motion, float(rng.uniform(0.7, 1.4)))
            motion = sub_window(motion, float(rng.uniform(0.6, 1.0)), rng)
            out.append((name, moved(noised(motion, rng), rng)))
    return out


def _standing(rng: np.random.Generator) -> list[Motion]:
    """Bodies that make no gesture: idle (perturbed) and poses held 2-10 s with capture jitter
    (the relaxed pose, the T-pose, random relaxed-like poses)."""
    idle = MotionLibrary.load().idle.motion
    out = []
    for _ in range(STILL_CASES):
        out.append(moved(noised(time_warp(idle, float(rng.uniform(0.7, 1.4))), rng), rng))
        n = int(rng.integers(2 * FPS, 10 * FPS))
        pose = idle.poses[int(rng.integers(idle.n_frames))] + rng.normal(0, 0.1, 165)
        for held in (pose, np.zeros(165)):
            still = Motion(np.tile(held, (n, 1)), np.tile([0.0, 0.93, 0.0], (n, 1)))
            out.append(moved(noised(still, rng), rng))
    return out


def _captions(stub: motion_pb2_grpc.MotionServiceStub, engine: MotionEngine) -> dict:
    """CaptionMotion latency and accuracy with the authored library (11 clips)."""
    rng = np.random.default_rng(CAPTION_SEED)
    held_out, standing = _held_out(rng), _standing(rng)

    def call(motion: Motion) -> motion_pb2.CaptionMotionResponse:
        user = motion_pb2.SmplxFrames(
            n_frames=motion.n_frames,
            poses=motion.poses.ravel().tolist(),
            trans=motion.trans.ravel().tolist(),
        )
        return stub.CaptionMotion(motion_pb2.CaptionMotionRequest(user=user), timeout=30)

    call(held_out[0][1])
    times, replies = [], []
    for _, motion in held_out:
        seconds, reply = timed(lambda motion=motion: call(motion))
        times.append(seconds)
        replies.append(reply)
    ten_s = time_warp(MotionLibrary.load().clips["dance_step"].motion, 0.2)
    long_call = repeat(lambda: call(ten_s), RUNS)
    in_engine = repeat(lambda: engine.caption(held_out[0][1]), TEXT_RUNS)
    names = [name for name, _ in held_out]
    nearest = sum(r.source == f"library:{n}" for n, r in zip(names, replies, strict=True))
    correct = sum(r.caption == AUTHORED_CAPTIONS[n] for n, r in zip(names, replies, strict=True))
    silent = sum(engine.caption(motion).text == "" for motion in standing)
    return {
        "held_out_clips": len(held_out),
        "held_out_frames_median": int(statistics.median(m.n_frames for _, m in held_out)),
        "grpc_p50_ms": round(statistics.median(times) * 1000, 2),
        "grpc_p95_ms": round(percentile(times, 95) * 1000, 2),
        "grpc_10s_clip_p50_ms": round(statistics.median(long_call) * 1000, 2),
        "engine_p50_ms": round(statistics.median(in_engine) * 1000, 2),
        "top1_caption_correct": round(correct / len(held_out), 3),
        "top1_nearest_correct": round(nearest / len(held_out), 3),
        "standing_cases": len(standing),
        "standing_empty_rate": round(silent / len(standing), 3),
    }


def _captions_at_scale(held_out: list[tuple[str, Motion]], built_dir: Path) -> dict:
    """Caption latency over 40,000 descriptors (real descriptors of perturbed authored clips,
    repeated with jitter) and the descriptor cost at load of a built library without stored
    descriptors (measured on the 1K-clip build)."""
    rng = np.random.default_rng(CAPTION_SEED)
    real = np.stack([describe(motion) for _, motion in held_out])
    rows = real[rng.integers(0, len(real), CAPTION_CLIPS)]
    rows = rows + rng.normal(0, 0.02, rows.shape).astype(np.float32)
    names = [f"clip{i:05d}" for i in range(CAPTION_CLIPS)]
    captioner = LibraryCaptioner(rows, names, [f"a person does motion {i}" for i in names])
    assert rows.shape[1] == DESCRIPTOR_DIMS
    queries = iter(motion for _ in range(2) for _, motion in held_out)
    captioner.caption(next(queries))
    times = repeat(lambda: captioner.caption(next(queries)), LIBRARY_QUERIES)
    built = BuiltLibrary.open(built_dir)
    load_s, _ = timed(lambda: describe_built(built))
    return {
        "clips": CAPTION_CLIPS,
        "engine_p50_ms": round(statistics.median(times) * 1000, 2),
        "engine_p95_ms": round(percentile(times, 95) * 1000, 2),
        "describe_s_per_1k_clips_at_load": round(load_s * 1000 / len(built.names), 2),
    }


def _text_to_motion() -> tuple[dict, dict]:
    settings = dataclasses.replace(MotionSettings(), host="127.0.0.1", port=0, metrics_port=-1)
    server = InProcessServer(DEFINITION, settings, MotionEngine(settings))
    load_s, _ = timed(server.start)
    engine = server.host.engine
    with sync_channel(server.address) as channel:
        stub = motion_pb2_grpc.MotionServiceStub(channel)
        count = itertools.count()

        def call(text: str) -> int:
            request = motion_pb2.TextToMotionRequest(text=text, duration_s=TEXT_SECONDS)
            return len(list(stub.TextToMotion(request, timeout=30)))

        call("warm up")
        fresh = repeat(lambda: call(_phrase(next(count), unique=True)), TEXT_RUNS)
        repeated = repeat(lambda: call(_phrase(next(count), unique=False)), TEXT_RUNS)
        captions = _captions(stub, engine)
    in_engine = repeat(
        lambda: engine.text_to_motion(_phrase(next(count), unique=True), TEXT_SECONDS), TEXT_RUNS
    )
    server.stop()
    return captions, {
        "load_and_warmup_s": round(load_s, 2),
        "new_phrase_p50_ms": round(statistics.median(fresh) * 1000, 1),
        "new_phrase_p95_ms": round(percentile(fresh, 95) * 1000, 1),
        "repeated_phrase_p50_ms": round(statistics.median(repeated) * 1000, 1),
        "engine_only_p50_ms": round(statistics.median(in_engine) * 1000, 1),
    }


LIBRARY_CLIPS = 40_000
LIBRARY_QUERIES = 200
BUILD_CLIPS = 1_000
BUILD_CLIP_FRAMES = 60


def _library_scale(directory: Path) -> tuple[dict, dict]:
    """Top-1 search over 40K unit embeddings (memory-mapped file) and build time per 1K clips."""
    rng = np.random.default_rng(0)
    rows = rng.normal(size=(LIBRARY_CLIPS, 384)).astype(np.float32)
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    rows.astype("<f4").tofile(directory / "embeddings.f32")
    mapped = np.memmap(directory / "embeddings.f32", "<f4", "r", shape=rows.shape)
    queries = rng.normal(size=(LIBRARY_QUERIES, 384)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    top1(mapped, queries[0])
    it = iter(queries)
    search = repeat(lambda: top1(mapped, next(it)), LIBRARY_QUERIES)
    data = directory / "data"
    data.mkdir()
    for i in range(BUILD_CLIPS):
        poses = 0.1 * rng.normal(size=(BUILD_CLIP_FRAMES, 165))
        trans = np.cumsum(0.01 * rng.normal(size=(BUILD_CLIP_FRAMES, 3)), 0)
        np.savez(data / f"clip{i:05d}.npz", poses=poses, trans=trans)
        (data / f"clip{i:05d}.txt").write_text(f"a person does motion number {i}\n")
    embedder = TextEmbedder()
    embedder.load()
    report = library_build.build(data, directory / "lib", embedder)
    assert report.clips == BUILD_CLIPS
    held_out = _held_out(np.random.default_rng(CAPTION_SEED))
    captions = _captions_at_scale(held_out, directory / "lib")
    return captions, {
        "clips": LIBRARY_CLIPS,
        "search_p50_ms": round(statistics.median(search) * 1000, 2),
        "search_p95_ms": round(percentile(search, 95) * 1000, 2),
        "build_s_per_1k_clips": round(report.seconds * 1000 / BUILD_CLIPS, 1),
    }


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tokens = _tokenizers(Path(tmp))
    captions, text = _text_to_motion()
    with tempfile.TemporaryDirectory() as tmp:
        captions_scale, scale = _library_scale(Path(tmp))
    rows = [
        (
            "cold start: load + warm-up (MiniLM, library, full-size tokenizers)",
            f"{tokens['load_and_warmup_s']:.2f} s",
        ),
        (
            f"decode {TOKENS} tokens ({tokens['motion_s']:.1f} s of motion), one-shot",
            f"{tokens['decode_p50_s'] * 1000:.0f} ms = "
            f"{tokens['decode_x_real_time']:.0f}x real time",
        ),
        (
            "decode, same, with another process keeping one core busy",
            f"{tokens['decode_one_core_busy_p50_s'] * 1000:.0f} ms = "
            f"{tokens['decode_one_core_busy_x_real_time']:.0f}x real time",
        ),
        (
            f"decode {TOKENS} tokens streamed in chunks of {STREAM_CHUNK_TOKENS}",
            f"{tokens['stream_decode_p50_s'] * 1000:.0f} ms = "
            f"{tokens['stream_x_real_time']:.0f}x real time",
        ),
        (
            f"encode {TOKENS * FRAMES_PER_TOKEN + 1} frames (+ transform id)",
            f"{tokens['encode_p50_s'] * 1000:.0f} ms = "
            f"{tokens['encode_x_real_time']:.0f}x real time",
        ),
        (
            f"text2motion {TEXT_SECONDS:.0f} s over gRPC, new phrase p50 / p95",
            f"{text['new_phrase_p50_ms']:.1f} / {text['new_phrase_p95_ms']:.1f} ms",
        ),
        ("text2motion, repeated phrase p50", f"{text['repeated_phrase_p50_ms']:.1f} ms"),
        ("text2motion, engine only p50", f"{text['engine_only_p50_ms']:.1f} ms"),
        (
            f"library search, top-1 of {scale['clips']:,} unit 384-dim embeddings p50 / p95",
            f"{scale['search_p50_ms']:.2f} / {scale['search_p95_ms']:.2f} ms",
        ),
        (
            f"library build per 1K clips ({BUILD_CLIP_FRAMES} frames, 1 text, MiniLM on CPU)",
            f"{scale['build_s_per_1k_clips']:.1f} s",
        ),
        (
            f"caption, 11 authored clips, over gRPC p50 / p95 "
            f"({captions['held_out_frames_median']}-frame median user clip)",
            f"{captions['grpc_p50_ms']:.2f} / {captions['grpc_p95_ms']:.2f} ms",
        ),
        (
            "caption, 11 clips, a 10 s user clip over gRPC p50",
            f"{captions['grpc_10s_clip_p50_ms']:.2f} ms",
        ),
        (
            f"caption, {captions_scale['clips']:,} clip descriptors, engine p50 / p95",
            f"{captions_scale['engine_p50_ms']:.2f} / {captions_scale['engine_p95_ms']:.2f} ms",
        ),
        (
            "caption descriptors computed at load (library built without them), per 1K clips",
            f"{captions_scale['describe_s_per_1k_clips_at_load']:.2f} s",
        ),
        (
            f"caption held-out top-1 correct ({captions['held_out_clips']} perturbed gestures; "
            "nearest clip right)",
            f"{captions['top1_caption_correct']:.1%} ({captions['top1_nearest_correct']:.1%})",
        ),
        (
            f"caption says nothing to idle / standing bodies ({captions['standing_cases']} cases)",
            f"{captions['standing_empty_rate']:.1%}",
        ),
    ]
    figures = {
        "tokenizers_full_size": tokens,
        "text_to_motion": text,
        "library_scale": scale,
        "caption": captions,
        "caption_scale": captions_scale,
    }
    report("motion", rows, figures)


if __name__ == "__main__":
    main()
