"""agent: the agent turn with the user's motion captioned (``dlp+motiongpt+retrieval``) vs not
(``dlp+retrieval``), same run: two relays, one per method, on the same services, taking turns
(so drift in the machine's speed falls on both alike); the user waves while asking. Time from
the WAV's arrival to the first reply WAV at the headset, p50/p95, the caption stage against
asr (the caption runs beside it), and the LLM's part, whose prompt the caption changes."""

from __future__ import annotations

import json
import statistics
import tempfile
from pathlib import Path

import numpy as np

from bench.common import headset_turn, percentile, report
from services.motion.library import MotionLibrary
from solami.methods import DLP_MOTIONGPT_RETRIEVAL, DLP_RETRIEVAL
from solami.redis_local import start_local_redis
from tests.support.servers import free_port
from tests.support.stack import Stack

TURNS = 12
SERVICES = ["asr", "llm", "tts", "motion", "face"]
METHODS = (DLP_RETRIEVAL, DLP_MOTIONGPT_RETRIEVAL)
# Redis database of each relay's headset.
HEADSET_DB = {DLP_RETRIEVAL: 2, DLP_MOTIONGPT_RETRIEVAL: 3}


def _talk(relay: Stack, method: str, motion: Path, out: Path) -> dict:
    base = relay.env["SOLAMI_REDIS_URL"].rsplit("/", 1)[0]
    port = relay.env["SOLAMI_RELAY_HEADSETS"].split(":")[1]
    return headset_turn(f"ws://127.0.0.1:{port}", f"{base}/{HEADSET_DB[method]}", out, motion)


def _stage_ms(log: Path, stage: str) -> list[float]:
    turns = [json.loads(line) for line in log.read_text().splitlines() if '"msg": "turn"' in line]
    return [turn[f"{stage}_ms"] for turn in turns if f"{stage}_ms" in turn]


def _ms(values: list[float]) -> str:
    return f"{statistics.median(values):.0f} / {percentile(values, 95):.0f} ms"


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="solami-bench-agent-"))
    url = f"redis://127.0.0.1:{free_port()}/0"
    redis_process = start_local_redis(url)
    wave = MotionLibrary.load().clips["wave"].motion
    motion = tmp / "wave.npz"
    np.savez(motion, poses=wave.poses, trans=wave.trans)
    services = Stack(url, tmp / "services")
    relays: dict[str, Stack] = {}
    try:
        (tmp / "services").mkdir()
        for name in SERVICES:
            services.start(name)
        services.wait_ready(SERVICES)
        for method in METHODS:
            logs = tmp / method.replace("+", "_")
            logs.mkdir()
            # Each relay's headset has its own name, so neither resumes the other's session.
            headset = f"{logs.name}:{free_port()}:{HEADSET_DB[method]}"
            relay = Stack(url, logs, headset, SOLAMI_RELAY_METHOD=method)
            for name in SERVICES:  # the relays call the one set of services
                prefix = f"SOLAMI_{name.upper()}_"
                relay.env[f"{prefix}PORT"] = services.env[f"{prefix}PORT"]
            relay.start("relay")
            relay.wait_ready(["relay"])
            relays[method] = relay
        for method in METHODS:  # first turns load caches
            _talk(relays[method], method, motion, tmp / f"warm-{method}")
        first_wav: dict[str, list[float]] = {method: [] for method in METHODS}
        for turn in range(TURNS):
            for method in METHODS if turn % 2 else reversed(METHODS):
                timeline = _talk(relays[method], method, motion, tmp / f"{method}-{turn}")
                first_wav[method].append(timeline["first_reply_wav_s"] * 1000)
    finally:
        for relay in relays.values():
            relay.stop_all()
        services.stop_all()
        redis_process.stop()
    logs = {method: relays[method].logs / "relay.log" for method in METHODS}
    caption_ms = _stage_ms(logs[DLP_MOTIONGPT_RETRIEVAL], "caption")[-TURNS:]
    asr_ms = _stage_ms(logs[DLP_MOTIONGPT_RETRIEVAL], "asr")[-TURNS:]
    # The LLM's part: from asr done to the first sentence (the prompts differ by the caption).
    llm_ms = {
        method: [
            sentence - asr
            for asr, sentence in zip(
                _stage_ms(logs[method], "asr")[-TURNS:],
                _stage_ms(logs[method], "llm_first_sentence")[-TURNS:],
                strict=True,
            )
        ]
        for method in METHODS
    }
    off, on = (statistics.median(first_wav[method]) for method in METHODS)
    rows = [
        *((f"first reply WAV, {method}, p50 / p95", _ms(first_wav[method])) for method in METHODS),
        ("captioned / not, first reply WAV p50", f"{on / off:.3f}"),
        ("  caption done (beside asr), from the turn's start, p50 / p95", _ms(caption_ms)),
        ("  asr done, from the turn's start, p50 / p95", _ms(asr_ms)),
        *(
            (f"  asr done -> first LLM sentence, {method}, p50 / p95", _ms(llm_ms[method]))
            for method in METHODS
        ),
    ]
    report(
        "agent",
        rows,
        {
            "turns": TURNS,
            "first_reply_wav_ms": first_wav,
            "caption_stage_ms": caption_ms,
            "asr_stage_ms": asr_ms,
            "asr_to_first_sentence_ms": llm_ms,
        },
    )


if __name__ == "__main__":
    main()
