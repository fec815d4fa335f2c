"""load: many simulated headsets at once, real Redis, real WebSockets, every part a process.

1. The relay's own cost, with the services run as the echo profile (``SOLAMI_<SVC>_BACKEND=echo``,
   a benchmarking profile that answers at once; the motion service's authored library is cheap
   as it is): for 1-32 headsets, relay CPU (from /proc) per headset while every headset idles
   and while they all converse, the aiStream rate and the p99 gap between frames (from the
   entries' Redis ids), and how many headsets one relay core carries at a steady 30 fps.
2. The real stack of this machine (the embedded models): first reply WAV p50/p95 and failed
   turns with 1, 2 and 4 headsets talking at once, then more at once until turns fail, and how
   they fail: a spoken apology (the relay's cached apology WAV, byte for byte) with the status
   that caused it, or a hang (no WAV at all).

Each headset has its own Redis database, flushed at start as the Unity client does, so Redis
is started with more than its 16 default databases.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import io
import itertools
import json
import os
import shutil
import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path

import soundfile as sf

from bench.common import percentile, report
from relay.quest import keys
from solami.avatar.rates import FPS
from solami.redis_local import LocalRedis, RedisUnavailable, redis_reachable
from solami_cli import simulator
from tests.support.servers import free_port
from tests.support.stack import Stack

QUESTION = Path(__file__).resolve().parents[1] / "solami_cli" / "data" / "question.wav"
SERVICES = ["asr", "llm", "tts", "motion", "face"]
ECHO_ENV = {
    "SOLAMI_ASR_BACKEND": "echo",
    "SOLAMI_ASR_VAD": "false",
    "SOLAMI_LLM_BACKEND": "echo",
    "SOLAMI_TTS_BACKEND": "echo",
    "SOLAMI_FACE_BACKEND": "echo",
}
ECHO_HEADSETS = (1, 2, 4, 8, 16, 32)
REAL_HEADSETS = (1, 2, 4)
# Headsets at once tried after REAL_HEADSETS, in order, until turns fail.
OVERLOAD_HEADSETS = (8, 16, 32)
# Turns each headset takes at a REAL_HEADSETS level (one at an overload level).
REAL_TURNS = 2
# Measured windows, in seconds: every headset idle, then every headset conversing.
IDLE_WINDOW_S = 8.0
TALK_WINDOW_S = 12.0
# Conversation before the talking window opens (turns under way on every headset, their
# starts spread over it).
TALK_WARMUP_S = 9.0
# After connecting: the relay reads char_id and starts the character's idle animation.
SETTLE_S = 1.5
# Databases 0 (the default URL) and 1 (sessions) are not given to headsets.
FIRST_HEADSET_DB = 2
# A frame rate this close to 30 fps, with the p99 gap at most two frames, counts as steady.
STEADY_RATE = 0.97
STEADY_P99_GAP_MS = 2000 / FPS
# Longest wait for a turn's first reply WAV before it counts as a hang.
HANG_S = 120.0
# After a reply WAV's audio has played: no further WAV for this long ends the reply.
QUIET_AFTER_S = simulator.QUIET_AFTER_S
# Longest wait for the relay's report of a turn after its reply.
REPORT_WAIT_S = 5.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
# The ids of a stream's entries between two ids (XRANGE without the fields).
ENTRY_IDS_SCRIPT = """
local ids = {}
for i, entry in ipairs(redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[2])) do ids[i] = entry[1] end
return ids
"""


def start_redis(url: str, databases: int) -> LocalRedis:
    """A redis-server on the loopback port of ``url`` with ``databases`` databases."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RedisUnavailable("redis-server is not installed")
    port = url.rsplit(":", 1)[1].split("/")[0]
    workdir = Path(tempfile.mkdtemp(prefix="solami-redis-"))
    args = [binary, "--bind", "127.0.0.1", "--port", port, "--save", "", "--appendonly", "no"]
    process = LocalRedis([*args, "--databases", str(databases), "--dir", str(workdir)], workdir)
    deadline = time.monotonic() + 10
    while not redis_reachable(url, 0.2):
        if process.poll() is not None or time.monotonic() > deadline:
            process.stop(timeout_s=0)
            raise RedisUnavailable("redis-server did not start")
        time.sleep(0.05)
    return process


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system, every thread) process ``pid`` has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


@dataclasses.dataclass
class TurnResult:
    # Seconds from sending the WAV to the first reply WAV (None: no reply, a hang).
    first_wav_s: float | None = None
    # SHA-256 of each reply WAV, in order.
    wav_shas: list[str] = dataclasses.field(default_factory=list)
    # The relay's report: "ok", "error" (an apology was sent), "cancelled"; "" when none came.
    outcome: str = ""


class Headset:
    """One simulated Quest: its own Redis database and WebSocket, turns one at a time."""

    def __init__(self, ws_url: str, redis_url: str, wav: bytes, user_frames: list[dict]) -> None:
        self.ws_url, self.redis_url = ws_url, redis_url
        self.wav, self.user_frames = wav, user_frames
        self.results: list[TurnResult] = []
        # Set to end a conversation: the turn under way is abandoned (cancelling the task is
        # not enough: on Python 3.11 wait_for, which redis-py uses, can swallow it).
        self.stopping = False

    async def open(self) -> None:
        import redis.asyncio as aioredis
        from websockets.asyncio.client import connect

        self.redis = aioredis.Redis.from_url(self.redis_url)
        await self.redis.flushdb()
        await self.redis.set(keys.CHAR_ID, "Vrmgirl")
        self.ws = await connect(self.ws_url, max_size=None)

    async def close(self) -> None:
        await self.ws.close()
        await self.redis.aclose()

    async def turn(self) -> TurnResult:
        """Talks (userStream at 30 Hz), sends the utterance, takes the whole reply."""
        result = TurnResult()
        self.results.append(result)
        for fields in self.user_frames:
            if self.stopping:
                return result
            await self.redis.xadd(keys.USER_STREAM, fields)
            await asyncio.sleep(1 / FPS)
        await self.redis.delete(keys.LAST_TURN)
        sent = time.monotonic()
        await self.ws.send(self.wav)
        quiet_until = sent + HANG_S
        while time.monotonic() < quiet_until:
            if self.stopping:
                return result
            try:
                async with asyncio.timeout(0.2):
                    message = await self.ws.recv()
            except TimeoutError:
                continue
            if not isinstance(message, bytes):
                continue
            if result.first_wav_s is None:
                result.first_wav_s = time.monotonic() - sent
            result.wav_shas.append(hashlib.sha256(message).hexdigest())
            quiet_until = time.monotonic() + sf.info(io.BytesIO(message)).duration + QUIET_AFTER_S
        deadline = time.monotonic() + REPORT_WAIT_S
        while time.monotonic() < deadline:
            raw = await self.redis.get(keys.LAST_TURN)
            if raw is not None:
                result.outcome = json.loads(raw)["outcome"]
                break
            await asyncio.sleep(0.1)
        return result

    async def converse(self) -> None:
        while not self.stopping:
            await self.turn()

    async def frame_ids_ms(self, start_ms: int, end_ms: int) -> list[int]:
        """Millisecond times of the aiStream entries added between the two times (Redis sends
        the ids only: whole entries of 32 headsets would keep this process busy parsing)."""
        ids = await self.redis.eval(
            ENTRY_IDS_SCRIPT, 1, keys.CHARACTER_STREAM, str(start_ms), str(end_ms)
        )
        return [int(entry_id.split(b"-")[0]) for entry_id in ids]


def frame_figures(headsets: list[list[int]]) -> dict:
    """aiStream rate per headset (mean, lowest) and the p99 gap between frames, pooled."""
    rates = [_rate(ids) for ids in headsets]
    gaps = [b - a for ids in headsets for a, b in itertools.pairwise(ids)]
    return {
        "fps_mean": statistics.fmean(rates),
        "fps_min": min(rates),
        "gap_p99_ms": percentile(gaps, 99) if gaps else None,
        "gap_max_ms": max(gaps, default=None),
    }


def _rate(ids_ms: list[int]) -> float:
    """Frames per second between the first and the last of the entries."""
    if len(ids_ms) < 2 or ids_ms[-1] == ids_ms[0]:
        return 0.0
    return (len(ids_ms) - 1) * 1000 / (ids_ms[-1] - ids_ms[0])


def start_relay(stack: Stack, count: int) -> list[tuple[str, int]]:
    """Starts the relay with ``count`` headsets; their (WebSocket URL, Redis database)."""
    ports = [free_port() for _ in range(count)]
    stack.env["SOLAMI_RELAY_HEADSETS"] = ",".join(
        f"h{i}:{port}:{FIRST_HEADSET_DB + i}" for i, port in enumerate(ports)
    )
    stack.start("relay")
    stack.wait_ready(["relay"])
    return [(f"ws://127.0.0.1:{port}", FIRST_HEADSET_DB + i) for i, port in enumerate(ports)]


async def _open(stack: Stack, endpoints, wav: bytes, frames: list[dict]) -> list[Headset]:
    base = stack.env["SOLAMI_REDIS_URL"].rsplit("/", 1)[0]
    headsets = [Headset(ws, f"{base}/{db}", wav, frames) for ws, db in endpoints]
    await asyncio.gather(*(h.open() for h in headsets))
    await asyncio.sleep(SETTLE_S)
    return headsets


async def _window(pids: dict[str, int], headsets: list[Headset], seconds: float) -> dict:
    """CPU of each process in ``pids`` (in cores) and the aiStream figures over ``seconds``."""
    cpu0, wall0, start_ms = {k: cpu_s(p) for k, p in pids.items()}, time.monotonic(), _now_ms()
    await asyncio.sleep(seconds)
    cpu1, wall1, end_ms = {k: cpu_s(p) for k, p in pids.items()}, time.monotonic(), _now_ms()
    ids = [await h.frame_ids_ms(start_ms, end_ms) for h in headsets]
    cores = {f"{k}_cores": (cpu1[k] - cpu0[k]) / (wall1 - wall0) for k in pids}
    return {**cores, **frame_figures(ids)}


def _now_ms() -> int:
    return int(time.time() * 1000)


async def echo_level(
    stack: Stack,
    redis_pid: int,
    count: int,
    wav: bytes,
    frames: list[dict],
    idle_s: float,
    talk_s: float,
    warmup_s: float,
) -> dict:
    """The relay's cost with ``count`` headsets, idle then conversing."""
    endpoints = start_relay(stack, count)
    # The relay, Redis, and this process (the simulated headsets).
    pids = {"relay": stack.processes["relay"].pid, "redis": redis_pid, "headsets": os.getpid()}
    headsets = await _open(stack, endpoints, wav, frames)
    try:
        idle = await _window(pids, headsets, idle_s)
        # Turns spread over a conversation's cycle (talking, the reply, the quiet after it),
        # or over the warm-up when that is shorter; every headset converses in the window.
        spread_s = min(len(frames) / FPS + 5.0, warmup_s)
        tasks = [
            asyncio.create_task(_after(i * spread_s / count, headset))
            for i, headset in enumerate(headsets)
        ]
        await asyncio.sleep(warmup_s)
        talking = await _window(pids, headsets, talk_s)
        for headset in headsets:
            headset.stopping = True
        await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        await asyncio.gather(*(h.close() for h in headsets), return_exceptions=True)
        stack.stop("relay")
    results = [r for h in headsets for r in h.results if r.first_wav_s is not None]
    first = [r.first_wav_s * 1000 for r in results]
    return {
        "headsets": count,
        "idle": {**idle, "relay_cores_per_headset": idle["relay_cores"] / count},
        "talking": {**talking, "relay_cores_per_headset": talking["relay_cores"] / count},
        "turns_answered": len(results),
        "first_reply_wav_ms_p50": statistics.median(first) if first else None,
    }


async def _after(delay_s: float, headset: Headset) -> None:
    await asyncio.sleep(delay_s)
    await headset.converse()


def steady(figures: dict) -> bool:
    """30 fps held: every headset near the rate and the p99 gap at most two frames."""
    gap = figures["gap_p99_ms"]
    return figures["fps_min"] >= STEADY_RATE * FPS and gap is not None and gap <= STEADY_P99_GAP_MS


def headsets_per_core(levels: list[dict]) -> dict:
    """How many conversing headsets one relay core carries: at the most headsets that still
    held a steady 30 fps, those headsets divided by the relay cores they used (the cost taken
    as linear up to one core); and the same division at the most headsets measured."""
    held = [level for level in levels if steady(level["talking"])]
    most = max(levels, key=lambda level: level["headsets"])
    figures = {
        "held_headsets": 0,
        "headsets_per_core": None,
        "most_headsets": most["headsets"],
        "most_headsets_per_core": most["headsets"] / most["talking"]["relay_cores"],
    }
    if held:
        best = max(held, key=lambda level: level["headsets"])
        figures["held_headsets"] = best["headsets"]
        figures["headsets_per_core"] = best["headsets"] / best["talking"]["relay_cores"]
    return figures


async def real_level(stack: Stack, count: int, turns: int, wav: bytes, frames) -> dict:
    """``count`` headsets talking at once, ``turns`` turns each; with the failures the relay
    logged meanwhile."""
    log = stack.logs / "relay.log"
    offset = log.stat().st_size if log.exists() else 0
    endpoints = start_relay(stack, count)
    headsets = await _open(stack, endpoints, wav, frames)
    try:

        async def talk(headset: Headset) -> None:
            for _ in range(turns):
                await headset.turn()

        await asyncio.gather(*(talk(h) for h in headsets))
    finally:
        await asyncio.gather(*(h.close() for h in headsets), return_exceptions=True)
        stack.stop("relay")
    return {
        "headsets": count,
        "turns": [dataclasses.asdict(r) for h in headsets for r in h.results],
        "relay_failures": relay_failures(log, offset),
    }


def summarise(level: dict, apology_shas: set[str]) -> dict:
    """First reply WAV p50/p95 over real replies; failed turns, apologies and hangs."""
    turns = level["turns"]
    apologised = [t for t in turns if apology_shas & set(t["wav_shas"])]
    answered = [t for t in turns if t["wav_shas"] and t["wav_shas"][0] not in apology_shas]
    real = [t["first_wav_s"] * 1000 for t in answered]
    return {
        "headsets": level["headsets"],
        "turns": len(turns),
        "first_reply_wav_ms_p50": statistics.median(real) if real else None,
        "first_reply_wav_ms_p95": percentile(real, 95) if real else None,
        "errors": sum(t["outcome"] != "ok" for t in turns),
        "apologies": len(apologised),
        "hangs": sum(t["first_wav_s"] is None for t in turns),
        "relay_failures": level["relay_failures"],
        # When the apology came, for turns that were nothing but an apology.
        "apology_after_ms": [
            t["first_wav_s"] * 1000 for t in apologised if t["wav_shas"][0] in apology_shas
        ],
    }


def relay_failures(log: Path, offset: int = 0) -> dict[str, int]:
    """Failed turns in the relay's log from byte ``offset`` on, by stage and status
    ("llm: DEADLINE_EXCEEDED")."""
    reasons: Counter = Counter()
    with open(log, "rb") as f:
        f.seek(offset)
        lines = f.read().decode(errors="replace").splitlines()
    for line in lines:
        if line.startswith("{") and '"turn failed"' in line:
            entry = json.loads(line)
            reasons[f"{entry['stage']}: {entry['reason'].split(':')[0]}"] += 1
    return dict(reasons)


def _inputs() -> tuple[bytes, list[dict]]:
    wav = simulator.headset_wav(QUESTION)
    talk_s = max(0.5, simulator.speech_seconds(wav))
    return wav, simulator.user_motion(None, int(talk_s * FPS))


def run_echo(
    counts: tuple[int, ...] = ECHO_HEADSETS,
    idle_s: float = IDLE_WINDOW_S,
    talk_s: float = TALK_WINDOW_S,
    warmup_s: float = TALK_WARMUP_S,
) -> list[dict]:
    """The echo profile's levels (every part a process, Redis with enough databases)."""
    tmp = Path(tempfile.mkdtemp(prefix="solami-load-"))
    url = f"redis://127.0.0.1:{free_port()}/0"
    redis_process = start_redis(url, FIRST_HEADSET_DB + max(counts))
    stack = Stack(url, tmp, **ECHO_ENV)
    wav, frames = _inputs()
    try:
        for name in SERVICES:
            stack.start(name)
        stack.wait_ready(SERVICES)
        return [
            asyncio.run(
                echo_level(stack, redis_process.pid, n, wav, frames, idle_s, talk_s, warmup_s)
            )
            for n in counts
        ]
    finally:
        stack.stop_all()
        redis_process.stop()


def run_real() -> list[dict]:
    """The embedded stack: REAL_HEADSETS, then OVERLOAD_HEADSETS until turns fail."""
    tmp = Path(tempfile.mkdtemp(prefix="solami-load-"))
    url = f"redis://127.0.0.1:{free_port()}/0"
    redis_process = start_redis(url, FIRST_HEADSET_DB + max(OVERLOAD_HEADSETS))
    stack = Stack(url, tmp)
    wav, frames = _inputs()
    levels = []
    try:
        for name in SERVICES:
            stack.start(name)
        stack.wait_ready(SERVICES)
        asyncio.run(real_level(stack, 1, 1, wav, frames))  # the first turn warms caches
        for n in REAL_HEADSETS:
            levels.append(asyncio.run(real_level(stack, n, REAL_TURNS, wav, frames)))
        for n in OVERLOAD_HEADSETS:
            levels.append(asyncio.run(real_level(stack, n, 1, wav, frames)))
            if any(t["outcome"] != "ok" for t in levels[-1]["turns"]):
                break
    finally:
        stack.stop_all()
        redis_process.stop()
    return levels


def apology_shas(levels: list[dict]) -> set[str]:
    """The last WAV of each turn the relay reported as failed: its apology, spoken once and
    cached, so the same bytes every time (a real reply never repeats byte for byte)."""
    return {
        t["wav_shas"][-1]
        for level in levels
        for t in level["turns"]
        if t["outcome"] == "error" and t["wav_shas"]
    }


def _load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def _pct(cores: float) -> str:
    return f"{cores * 100:.1f}%"


def echo_rows(levels: list[dict], capacity: dict) -> list[tuple[str, str]]:
    rows = [
        (
            "echo profile, N headsets at once",
            "relay CPU per headset idle / conversing (of one core); aiStream fps mean (lowest); "
            "p99 / max inter-frame gap; relay, Redis, simulated headsets CPU; first reply WAV p50",
        )
    ]
    for level in levels:
        idle, talk = level["idle"], level["talking"]
        rows.append(
            (
                f"  {level['headsets']:>2}",
                f"{_pct(idle['relay_cores_per_headset'])} / "
                f"{_pct(talk['relay_cores_per_headset'])}; "
                f"{talk['fps_mean']:.1f} ({talk['fps_min']:.1f}) fps, idle "
                f"{idle['fps_mean']:.1f} ({idle['fps_min']:.1f}); "
                f"{_ms(talk['gap_p99_ms'])} / {_ms(talk['gap_max_ms'])} ms, idle "
                f"{_ms(idle['gap_p99_ms'])} / {_ms(idle['gap_max_ms'])} ms; "
                f"{_pct(talk['relay_cores'])}, {_pct(talk['redis_cores'])}, "
                f"{_pct(talk['headsets_cores'])}; {_ms(level['first_reply_wav_ms_p50'])} ms",
            )
        )
    per_core = capacity["headsets_per_core"]
    if per_core is None:
        held = "no level held a steady 30 fps"
    else:
        held = f"{per_core:.0f} (at {capacity['held_headsets']}, the most that held 30 fps)"
    by_cpu = f"{capacity['most_headsets_per_core']:.0f} by CPU at {capacity['most_headsets']}"
    rows.append(("headsets one relay core carries, conversing", f"{held}; {by_cpu}"))
    return rows


def real_rows(levels: list[dict]) -> list[tuple[str, str]]:
    rows = [("real stack, N headsets at once", "first reply WAV p50 / p95; failed turns")]
    for level in levels:
        rows.append(
            (
                f"  {level['headsets']:>2}",
                f"{_ms(level['first_reply_wav_ms_p50'])} / {_ms(level['first_reply_wav_ms_p95'])}"
                f" ms; {level['errors']} of {level['turns']} failed ({level['apologies']} "
                f"spoken apologies, {level['hangs']} hangs)",
            )
        )
    overloaded = next((i for i, level in enumerate(levels) if level["errors"]), None)
    if overloaded is None:
        where = f"not reached at {levels[-1]['headsets']} headsets" if levels else "not run"
    else:
        after = levels[overloaded]["apology_after_ms"]
        where = (
            f"{levels[overloaded]['headsets']} headsets: "
            + ", ".join(
                f"{reason} x{n}" for reason, n in levels[overloaded]["relay_failures"].items()
            )
            + (f"; apology after {_ms(statistics.median(after))} ms (p50)" if after else "")
        )
    rows.append(("overload begins at", where))
    return rows


def main() -> None:
    load_before = _load_average()
    echo = run_echo()
    capacity = headsets_per_core(echo)
    load_mid = _load_average()
    real_levels = run_real()
    shas = apology_shas(real_levels)
    real = [summarise(level, shas) for level in real_levels]
    load_after = _load_average()
    loads = f"{load_before} / {load_mid} / {load_after}"
    rows = [
        (f"{os.cpu_count()} CPUs; load average 1/5/15 min: start / echo done / end", loads),
        *echo_rows(echo, capacity),
        *real_rows(real),
    ]
    report(
        "load",
        rows,
        {
            "load_average": {"start": load_before, "echo_done": load_mid, "end": load_after},
            "cpus": os.cpu_count(),
            "echo": echo,
            "capacity": capacity,
            "real": real,
            "real_turns": real_levels,
        },
    )


if __name__ == "__main__":
    main()
