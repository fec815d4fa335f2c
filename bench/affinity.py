"""affinity: how much of each turn's prompt two llm replicas serve from their cache when a
session's turns stay on one replica (the relay's default) and when they go round robin.

Two ``solami serve llm`` processes (the embedded llama.cpp SmolLM2, one CPU thread each) are
driven through the relay's ``LlmClient`` as an agent turn uses it: method dlp+retrieval, the
session's history growing by the user's text and the character's reply each turn (trimmed as
the session store trims it). Two orders of the same conversations: 20 sessions taking turns
one after another (turn 1 of every session, then turn 2...), and 4 sessions each talking 5
turns in a row. Figures: cached prompt tokens / prompt tokens summed over the turns (the
service's ``GenerateEnd`` counts), overall and by turn, and the service's time to first
token, p50 (all turns, and the turns after each session's first).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import statistics
import tempfile
from pathlib import Path

from bench.common import report
from relay.clients.llm import LlmClient, Reply
from relay.clients.routing import LlmReplicas, channel_for
from relay.metrics import RelayMetrics
from relay.sessions import MAX_HISTORY_MESSAGES, Message
from solami.methods import DLP_RETRIEVAL
from solami.registry import SERVICES
from solami.v1 import common_pb2, llm_pb2_grpc
from tests.support.servers import free_port, spawn, wait_for_health

REPLICAS = 2
TURNS = 5
# (order, sessions): sessions interleaved turn by turn, or each talking all its turns in a row.
SCENARIOS = (("interleaved", 20), ("in a row", 4))
CHARACTER = "Samantha"
DEADLINE_S = 120.0
USER_TEXTS = (
    "Hi! I just got back from a long walk by the river.",
    "What do you like to do on a rainy afternoon?",
    "Can you tell me something funny that happened to you?",
    "I am thinking of learning to play the guitar. Any advice?",
    "What is your favourite kind of music, and why?",
    "Do you ever feel tired of talking to people all day?",
    "Tell me about a place you would love to visit.",
)


async def _turn(llm: LlmClient, session: str, index: int, history: list[Message]) -> Reply:
    text = USER_TEXTS[(hash_text(session) + index) % len(USER_TEXTS)]
    turn = common_pb2.TurnContext(session_id=session, turn_id=f"{session}-{index}")
    user = Message("user", text=text)
    reply = None
    async for event in llm.generate(turn, CHARACTER, DLP_RETRIEVAL, list(history), user):
        if isinstance(event, Reply):
            reply = event
    if reply is None:
        raise RuntimeError("generation ended without a reply")
    history += [user, Message("character", text=reply.message.text, motion=reply.message.motion)]
    del history[:-MAX_HISTORY_MESSAGES]
    return reply


def hash_text(session: str) -> int:
    """A session's offset into USER_TEXTS (stable across runs)."""
    return sum(session.encode())


async def _conversations(llm: LlmClient, prefix: str, order: str, sessions: int) -> list[dict]:
    names = [f"{prefix}-{order.replace(' ', '-')}-{i}" for i in range(sessions)]
    histories: dict[str, list[Message]] = {name: [] for name in names}
    if order == "interleaved":
        plan = [(name, index) for index in range(TURNS) for name in names]
    else:
        plan = [(name, index) for name in names for index in range(TURNS)]
    rows = []
    for name, index in plan:
        reply = await _turn(llm, name, index, histories[name])
        rows.append(
            {
                "turn": index,
                "prompt_tokens": reply.prompt_tokens,
                "cached_prompt_tokens": reply.cached_prompt_tokens,
                "first_token_ms": reply.first_token_ms,
            }
        )
    return rows


def _summary(rows: list[dict]) -> dict:
    later = [r for r in rows if r["turn"] > 0]

    def ratio(rs: list[dict]) -> float:
        return sum(r["cached_prompt_tokens"] for r in rs) / sum(r["prompt_tokens"] for r in rs)

    return {
        "turns": len(rows),
        "prompt_tokens": sum(r["prompt_tokens"] for r in rows),
        "cached_prompt_tokens": sum(r["cached_prompt_tokens"] for r in rows),
        "cached_ratio": ratio(rows),
        "cached_ratio_after_first_turn": ratio(later),
        "cached_ratio_by_turn": [ratio([r for r in rows if r["turn"] == t]) for t in range(TURNS)],
        "first_token_p50_ms": statistics.median(r["first_token_ms"] for r in rows),
        "first_token_p50_ms_after_first_turn": statistics.median(
            r["first_token_ms"] for r in later
        ),
    }


async def _run(addresses: list[str]) -> dict:
    info = SERVICES["llm"]
    os.environ[f"{info.env_prefix}ADDR"] = ",".join(addresses)
    metrics = RelayMetrics()
    replicas = LlmReplicas(info, llm_pb2_grpc.LlmServiceStub)
    channel = channel_for(info)
    clients = {
        "affinity": LlmClient(None, DEADLINE_S, metrics, replicas),
        "round robin": LlmClient(llm_pb2_grpc.LlmServiceStub(channel), DEADLINE_S, metrics),
    }
    results: dict = {}
    try:
        for order, sessions in SCENARIOS:
            for mode, llm in clients.items():
                rows = await _conversations(llm, mode.replace(" ", "-"), order, sessions)
                results[f"{order}, {mode}"] = {"sessions": sessions, **_summary(rows)}
    finally:
        await replicas.close()
        await channel.close()
    return results


def main() -> None:
    info = SERVICES["llm"]
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        addresses = []
        for index in range(REPLICAS):
            port = free_port()
            process = spawn(
                ["-m", "solami_cli", "serve", "llm"],
                {
                    f"{info.env_prefix}PORT": str(port),
                    f"{info.env_prefix}METRICS_PORT": str(free_port()),
                    f"{info.env_prefix}HOST": "127.0.0.1",
                    f"{info.env_prefix}CPU_THREADS": "1",
                },
                stderr_path=Path(tmp) / f"llm-{index}.log",
            )
            stack.callback(process.wait)
            stack.callback(process.kill)
            addresses.append(f"127.0.0.1:{port}")
        for address in addresses:
            wait_for_health(address, info.full_name, "SERVING", 180)
        results = asyncio.run(_run(addresses))
    rows = []
    for name, figures in results.items():
        by_turn = " ".join(f"{ratio:.0%}" for ratio in figures["cached_ratio_by_turn"])
        rows.append(
            (
                f"{name} ({figures['sessions']} sessions x {TURNS} turns)",
                f"cached {figures['cached_ratio']:.1%} of {figures['prompt_tokens']} prompt "
                f"tokens (by turn {by_turn}), first token p50 "
                f"{figures['first_token_p50_ms']:.0f} ms "
                f"({figures['first_token_p50_ms_after_first_turn']:.0f} ms after turn 1)",
            )
        )
    report("affinity", rows, {"replicas": REPLICAS, "turns_per_session": TURNS, **results})


if __name__ == "__main__":
    main()
