"""relay: a 10 s headset clip with a ~3 s question through the whole stack (every service and
the relay as processes, real Redis, the headset simulator): time from the WAV's arrival to the
first reply WAV and to the first answering aiStream frame, p50/p95 over 20 turns, the per-stage
breakdown, the relay's own share, and 4 headsets at once."""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from bench.common import headset_turn, percentile, repeat, report
from relay.quest.rig import Rig
from solami.client import check_health
from solami.redis_local import start_local_redis
from tests.support.servers import free_port
from tests.support.stack import RIG_DATA, Stack

TURNS = 20
HEADSETS = 4
STAGES = ("asr", "llm_first_sentence", "tts_first_audio", "face", "first_clip", "first_reply")


def _talk(stack: Stack, port: int, db: int, out: Path) -> dict:
    base = stack.env["SOLAMI_REDIS_URL"].rsplit("/", 1)[0]
    return headset_turn(f"ws://127.0.0.1:{port}", f"{base}/{db}", out)


def _turn_logs(log: Path) -> list[dict]:
    turns = []
    for line in log.read_text().splitlines():
        if line.startswith("{") and '"msg": "turn"' in line:
            turns.append(json.loads(line))
    return turns


def _ms(values: list[float]) -> str:
    return f"{statistics.median(values):.0f} / {percentile(values, 95):.0f} ms"


def _retarget_ms() -> float | None:
    """Best-of-5 time to retarget a 10 s (300-frame) SMPL-X clip onto Vrmgirl's rig."""
    if not RIG_DATA.is_dir():
        return None
    rig = Rig.load(RIG_DATA, "Vrmgirl")
    motion = np.load(RIG_DATA / "anim_data" / "Smplx_ai.npz")
    poses = np.resize(motion["poses"].astype(np.float64), (300, 165))
    trans = np.resize(motion["trans"].astype(np.float64), (300, 3))
    return min(repeat(lambda: rig.frames(poses, trans), 5)) * 1000


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="solami-bench-"))
    url = f"redis://127.0.0.1:{free_port()}/0"
    redis_process = start_local_redis(url)
    ports = [free_port() for _ in range(HEADSETS)]
    headsets = ",".join(f"h{i}:{port}:{i + 2}" for i, port in enumerate(ports))
    stack = Stack(url, tmp, headsets=headsets)
    parts = ["asr", "llm", "tts", "motion", "face", "relay"]
    try:
        for name in parts:
            stack.start(name)
        stack.wait_ready(parts)
        _talk(stack, ports[0], 2, tmp / "warm")  # first turn loads caches
        timelines = [_talk(stack, ports[0], 2, tmp / f"t{i}") for i in range(TURNS)]
        relay_turns = _turn_logs(tmp / "relay.log")[-TURNS:]
        started = time.perf_counter()
        with ThreadPoolExecutor(HEADSETS) as pool:
            concurrent = list(
                pool.map(lambda i: _talk(stack, ports[i], i + 2, tmp / f"c{i}"), range(HEADSETS))
            )
        wall = time.perf_counter() - started
        rtt = []
        for _ in range(50):
            t0 = time.perf_counter()
            check_health(stack.address("llm"), "", 1.0)
            rtt.append((time.perf_counter() - t0) * 1000)
    finally:
        stack.stop_all()
        redis_process.stop()
    first_wav = [t["first_reply_wav_s"] * 1000 for t in timelines]
    first_frame = [
        t["first_answer_frame_s"] * 1000 for t in timelines if "first_answer_frame_s" in t
    ]
    stages = {s: [t[f"{s}_ms"] for t in relay_turns if f"{s}_ms" in t] for s in STAGES}
    relay_share = [
        t["first_reply_ms"] - t["first_clip_ms"]
        for t in relay_turns
        if "first_reply_ms" in t and "first_clip_ms" in t
    ]
    delivery = [
        w - t["first_reply_ms"]
        for w, t in zip(first_wav, relay_turns, strict=False)
        if "first_reply_ms" in t
    ]
    fps = [t["aistream_fps"] for t in timelines if "aistream_fps" in t]
    retarget_ms = _retarget_ms()
    rows = [
        ("WAV -> first reply WAV at the headset, p50 / p95", _ms(first_wav)),
        ("WAV -> first answering aiStream frame, p50 / p95", _ms(first_frame)),
        *((f"  stage done: {s}, p50 / p95", _ms(v)) for s, v in stages.items() if v),
        ("relay: reply ready -> WAV sent (encode, send, change_id)", _ms(relay_share)),
        ("relay -> headset delivery (WebSocket, simulator clock)", _ms(delivery)),
        ("gRPC round trip on loopback (health check), p50", f"{statistics.median(rtt):.2f} ms"),
        ("aiStream rate", f"{statistics.median(fps):.1f} frames/s"),
        (
            "retarget a 10 s clip onto Vrmgirl (300 frames)",
            "no rig data" if retarget_ms is None else f"{retarget_ms:.1f} ms",
        ),
        (
            f"{HEADSETS} headsets at once: first reply WAV p50 / max",
            f"{statistics.median(c['first_reply_wav_s'] for c in concurrent) * 1000:.0f} / "
            f"{max(c['first_reply_wav_s'] for c in concurrent) * 1000:.0f} ms (wall {wall:.1f} s)",
        ),
    ]
    report(
        "relay",
        rows,
        {
            "turns": TURNS,
            "first_reply_wav_ms": first_wav,
            "first_answer_frame_ms": first_frame,
            "stages_ms": stages,
            "relay_share_ms": relay_share,
            "delivery_ms": delivery,
            "grpc_rtt_ms_p50": statistics.median(rtt),
            "concurrent": concurrent,
            "retarget_300_frames_ms": retarget_ms,
        },
    )


if __name__ == "__main__":
    main()
