"""llm: time to first token and to the first complete sentence for a ~300-token prompt (cold:
nothing of it in the KV cache; warm: the session's history prefix cached), decode speed, and the
SOLAMI prompt build + parse overhead for a 2048-token conversation."""

from __future__ import annotations

import asyncio
import dataclasses
import statistics
import tempfile
import time
from pathlib import Path

from bench.common import report
from services.llm.backends.base import GenerationStats
from services.llm.engine import (
    AGENT_SAMPLING,
    Finished,
    LlmEngine,
    Request,
    SentenceReady,
)
from services.llm.parsing import parse_solami
from services.llm.prompt import Tokens, Turn, build_solami_prompt
from services.llm.settings import LlmSettings
from solami.methods import LLM_SPEECH
from tests.support.tiny_solami import save_tiny_solami

RUNS = 5
# The agent methods keep the last five messages: these four and the new user message, long
# enough that the prompt is about 300 tokens.
HISTORY = (
    ("user", "Hi Samantha, I just got home from a very long day at work. My boss moved every "
     "meeting around, so I feel completely drained."),
    ("character", "Welcome home! That sounds exhausting. Kick off your shoes and sit down on "
     "the sofa. I am right here to keep you company."),
    ("user", "Thanks, that helps. Can you tell me something fun about the ocean to cheer me "
     "up? I have loved the sea since I was a child."),
    ("character", "Of course! Octopuses have three hearts and blue blood, and some dolphins "
     "call each other by name with their own whistles."),
)  # fmt: skip
COLD_QUESTION = (
    "That is amazing, I never knew that. Tell me one more ocean fact, please, maybe about whales."
)
WARM_QUESTION = "And one about the deep sea, where sunlight never reaches?"
# Another conversation run before each cold turn: no chat template and other words, so it
# shares not one token with the benchmark's prompt and leaves nothing in the cache to reuse.
EVICTING_PROMPT = "Write a short poem about mountains, rivers and the wind in autumn:"


async def _turn(engine: LlmEngine, history: tuple[Turn, ...], text: str) -> dict:
    request = Request(
        "Samantha",
        LLM_SPEECH,
        history,
        Turn("user", text=text),
        dataclasses.replace(AGENT_SAMPLING, max_new_tokens=64, seed=3),
    )
    started = time.perf_counter()
    first_sentence_s = 0.0
    async for event in engine.generate(request):
        if isinstance(event, SentenceReady) and not first_sentence_s:
            first_sentence_s = time.perf_counter() - started
        if isinstance(event, Finished):
            decode_s = max(1e-6, event.total_ms - event.first_token_ms) / 1000
            return {
                "prompt_tokens": event.prompt_tokens,
                "cached_prompt_tokens": event.cached_prompt_tokens,
                "first_token_s": event.first_token_ms / 1000,
                "first_sentence_s": first_sentence_s,
                "tokens_per_s": event.completion_tokens / decode_s,
            }
    raise RuntimeError("generation ended without a Finished event")


async def _evict(engine: LlmEngine) -> None:
    sampling = dataclasses.replace(AGENT_SAMPLING, max_new_tokens=8, seed=3)
    async for _ in engine.backend.stream(EVICTING_PROMPT, sampling, GenerationStats()):
        pass


def _generation() -> dict:
    engine = LlmEngine(LlmSettings())
    engine.load()
    engine.warmup()
    history = tuple(Turn(role, text=text) for role, text in HISTORY)
    cold, warm = [], []
    for _ in range(RUNS):
        asyncio.run(_evict(engine))
        cold.append(asyncio.run(_turn(engine, history, COLD_QUESTION)))
        warm.append(asyncio.run(_turn(engine, history, WARM_QUESTION)))
    engine.shutdown()
    median = lambda rows, key: statistics.median(r[key] for r in rows)  # noqa: E731
    return {
        "prompt_tokens": cold[0]["prompt_tokens"],
        "cold_cached_prompt_tokens": max(r["cached_prompt_tokens"] for r in cold),
        "cold_first_token_s": median(cold, "first_token_s"),
        "cold_first_sentence_s": median(cold, "first_sentence_s"),
        "warm_prompt_tokens": warm[0]["prompt_tokens"],
        "warm_cached_prompt_tokens": warm[0]["cached_prompt_tokens"],
        "warm_first_token_s": median(warm, "first_token_s"),
        "warm_first_sentence_s": median(warm, "first_sentence_s"),
        "decode_tokens_per_s": median(cold + warm, "tokens_per_s"),
    }


def _prompt_overhead() -> dict:
    from transformers import AutoTokenizer

    with tempfile.TemporaryDirectory() as tmp:
        tokenizer = AutoTokenizer.from_pretrained(save_tiny_solami(Path(tmp)))
    count = lambda text: len(tokenizer(text).input_ids)  # noqa: E731
    engine = LlmEngine(LlmSettings())
    character = engine.characters.get("Samantha")
    turn = lambda role, n: Turn(role, tokens=Tokens(tuple(range(n)), (1,) * 8, (2,) * 8, 3))  # noqa: E731
    history = tuple(turn("user" if i % 2 == 0 else "character", 150) for i in range(12))
    user = turn("user", 150)
    reply = " <sobo>" + "<🕺1>" * 8 + "<eobo><soha>" + "<🤚2>" * 8 + "<eoha><sosp>"
    reply += "".join(f"<🗣️{i}>" for i in range(150)) + "<eosp><eos>"
    timings = []
    for _ in range(20):
        started = time.perf_counter()
        _, length, dropped = build_solami_prompt(character, history, user, count, 2048)
        parse_solami(reply)
        timings.append(time.perf_counter() - started)
    return {"prompt_tokens": length, "dropped": dropped, "p50_ms": statistics.median(timings) * 1e3}


def main() -> None:
    gen = _generation()
    overhead = _prompt_overhead()
    rows = [
        (
            "SmolLM2 prompt (cold turn)",
            f"{gen['prompt_tokens']} tokens, {gen['cold_cached_prompt_tokens']} from cache",
        ),
        (
            "cold: first token / first sentence",
            f"{gen['cold_first_token_s'] * 1e3:.0f} / {gen['cold_first_sentence_s'] * 1e3:.0f} ms",
        ),
        (
            "warm (history cached): first token / first sentence",
            f"{gen['warm_first_token_s'] * 1e3:.0f} / {gen['warm_first_sentence_s'] * 1e3:.0f} ms",
        ),
        (
            "warm: prompt tokens served from cache",
            f"{gen['warm_cached_prompt_tokens']} of {gen['warm_prompt_tokens']}",
        ),
        ("decode speed", f"{gen['decode_tokens_per_s']:.0f} tokens/s"),
        (
            f"SOLAMI prompt build + parse ({overhead['prompt_tokens']} tokens)",
            f"{overhead['p50_ms']:.2f} ms",
        ),
    ]
    report("llm", rows, {"generation": gen, "solami_prompt_overhead": overhead})


if __name__ == "__main__":
    main()
