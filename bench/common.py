"""Timing helpers and result output shared by the benchmarks."""

from __future__ import annotations

import json
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

OUTPUT_DIR = Path("bench-output")
# The headset's question: a ~3 s spoken question.
QUESTION = Path(__file__).resolve().parents[1] / "solami_cli" / "data" / "question.wav"


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    """Seconds ``fn`` took and its result."""
    started = time.perf_counter()
    result = fn()
    return time.perf_counter() - started, result


def repeat(fn: Callable[[], object], runs: int) -> list[float]:
    """Durations of ``runs`` calls, in seconds."""
    return [timed(fn)[0] for _ in range(runs)]


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) by linear interpolation."""
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    return statistics.quantiles(ordered, n=100, method="inclusive")[int(q) - 1]


def report(part: str, rows: list[tuple[str, str]], figures: dict) -> None:
    """Prints ``rows`` as a table and writes ``figures`` to bench-output/<part>.json."""
    width = max(len(name) for name, _ in rows)
    print(f"\n== {part} ==")
    for name, value in rows:
        print(f"  {name:<{width}}  {value}")
    OUTPUT_DIR.mkdir(exist_ok=True)
    figures = {"machine": platform.processor() or platform.machine(), **figures}
    (OUTPUT_DIR / f"{part}.json").write_text(json.dumps(figures, indent=2) + "\n")


def headset_turn(ws_url: str, redis_url: str, out: Path, motion: Path | None = None) -> dict:
    """One turn of the headset simulator (character Vrmgirl asking ``QUESTION``, the user's
    motion from ``motion`` or standing still): its timeline (``solami_cli.simulator.run``)."""
    import argparse
    import asyncio

    from solami_cli import simulator

    args = argparse.Namespace(
        wav=QUESTION,
        motion=motion,
        character="Vrmgirl",
        out=out,
        ws=ws_url,
        redis=redis_url,
        timeout_s=60.0,
        settle_s=1.0,
    )
    return asyncio.run(simulator.run(args))
