"""llm: time to first token and to the first complete sentence for a ~300-token prompt (cold
and with the session's history prefix cached), decode speed, and the SOLAMI prompt build +
parse overhead for a 2048-token conversation."""

from __future__ import annotations

import asyncio
import dataclasses
import statistics
import tempfile
import time
from pathlib import Path

from bench.common import report
from services.llm.engine import LLM_SPEECH, Finished, LlmEngine, Request, SentenceReady
from services.llm.generation import AGENT_SAMPLING
from services.llm.parsing import parse_solami
from services.llm.prompt import Tokens, Turn, build_solami_prompt
from services.llm.settings import LlmSettings
from tests.support.tiny_solami import save_tiny_solami

RUNS = 5
HISTORY = (
    ("user", "Hi Samantha, I just got home from a long day at work and I feel tired."),
    ("character", "Welcome home! Sit down and relax, I'm here to keep you company."),
    ("user", "Thanks. Can you tell me something fun to cheer me up a little bit?"),
    ("character", "Sure! Did you know that octopuses have three hearts and blue blood?"),
    ("user", "That's amazing. What else do you know about the ocean and its animals?"),
    ("character", "Dolphins sleep with one eye open, and some whales sing for hours."),
    ("user", "Wow, I never knew that. Do you think we could visit an aquarium this weekend?"),
    ("character", "I'd love that! We could watch the jellyfish glow and see the sea turtles."),
)


async def _turn(engine: LlmEngine, history: tuple[Turn, ...], text: str) -> dict:
    request = Request(
        "Samantha", LLM_SPEECH, history, Turn("user", text=text),
        dataclasses.replace(AGENT_SAMPLING, max_new_tokens=64, seed=3),
    )  # fmt: skip
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


def _generation() -> dict:
    engine = LlmEngine(LlmSettings())
    engine.load()
    engine.warmup()
    history = tuple(Turn(role, text=text) for role, text in HISTORY)
    other = tuple(Turn(role, text=text[::-1]) for role, text in HISTORY)
    cold, warm = [], []
    for i in range(RUNS):
        # A different session in between evicts the cache: the first turn is cold.
        asyncio.run(_turn(engine, other, f"Unrelated question number {i}?"))
        cold.append(asyncio.run(_turn(engine, history, "Tell me one more ocean fact, please.")))
        warm.append(asyncio.run(_turn(engine, history, "And one about the deep sea?")))
    engine.shutdown()
    median = lambda rows, key: statistics.median(r[key] for r in rows)  # noqa: E731
    return {
        "prompt_tokens": cold[0]["prompt_tokens"],
        "cold_first_token_s": median(cold, "first_token_s"),
        "cold_first_sentence_s": median(cold, "first_sentence_s"),
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
        ("SmolLM2 prompt", f"{gen['prompt_tokens']} tokens"),
        ("cold: first token / first sentence",
         f"{gen['cold_first_token_s'] * 1e3:.0f} / {gen['cold_first_sentence_s'] * 1e3:.0f} ms"),
        ("warm (history cached): first token / first sentence",
         f"{gen['warm_first_token_s'] * 1e3:.0f} / {gen['warm_first_sentence_s'] * 1e3:.0f} ms"),
        ("warm: prompt tokens served from cache", str(gen["warm_cached_prompt_tokens"])),
        ("decode speed", f"{gen['decode_tokens_per_s']:.0f} tokens/s"),
        (f"SOLAMI prompt build + parse ({overhead['prompt_tokens']} tokens)",
         f"{overhead['p50_ms']:.2f} ms"),
    ]  # fmt: skip
    report("llm", rows, {"generation": gen, "solami_prompt_overhead": overhead})


if __name__ == "__main__":
    main()
