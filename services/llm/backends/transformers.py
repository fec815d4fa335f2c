"""Hugging Face transformers: a causal LM in the HF layout (config + safetensors + tokenizer)
from a path, decoded token by token on CPU or GPU.

This is the loading path of a SOLAMI checkpoint outside vLLM. The decoding loop is explicit so
that every step can observe cancellation, keep the key/value cache of the session's last
prompt (a growing history only evaluates its new tokens), and apply an optional logits hook.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

from services.llm.backends.base import GenerationStats, Sampling
from services.llm.backends.hf_tokenizer import HfTokenizerPrompts
from services.llm.settings import LlmSettings
from solami.errors import EngineUnavailable
from solami.streaming import iterate_in_thread

# A hook that may rewrite the next-token logits: (generated ids so far, logits) -> logits.
LogitsHook = Callable[[list[int], "object"], "object"]


class TransformersGenerator(HfTokenizerPrompts):
    """A causal LM loaded with ``AutoModelForCausalLM.from_pretrained`` from a directory."""

    name = "transformers"

    def __init__(self, settings: LlmSettings, logits_hook: LogitsHook | None = None) -> None:
        self._settings = settings
        self._logits_hook = logits_hook
        self._lock = threading.Lock()
        self._cache_ids: list[int] = []
        self._cache = None

    def load(self) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        path = Path(self._settings.model)
        if not (path / "config.json").is_file():
            raise EngineUnavailable(
                f"SOLAMI_LLM_MODEL must be a Hugging Face model directory, got {path}"
            )
        torch.set_num_threads(self._settings.cpu_threads)
        # Decoding and the agent methods' chat template; a SOLAMI checkpoint's prompts are
        # encoded by the slow LlamaTokenizer (training used use_fast=False).
        self._tokenizer = AutoTokenizer.from_pretrained(path)
        self._load_slow_if_solami(path)
        dtype = torch.float16 if self._settings.device.startswith("cuda") else torch.float32
        self._model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
        self._model.to(self._settings.device).eval()

    def shutdown(self) -> None:
        self._model = None
        self._cache = None

    def stream(self, prompt: str, sampling: Sampling, stats: GenerationStats) -> AsyncIterator[str]:
        return iterate_in_thread(lambda cancel: self._generate(prompt, sampling, stats, cancel))

    def _generate(
        self, prompt: str, sampling: Sampling, stats: GenerationStats, cancel: threading.Event
    ) -> Iterator[str]:
        import torch

        with self._lock, torch.inference_mode():
            ids = self.prompt_ids(prompt)
            stats.prompt_tokens = len(ids)
            cache, reused = self._reuse_cache(ids)
            stats.cached_prompt_tokens = reused
            generator = torch.Generator(device="cpu")
            generator.manual_seed(sampling.seed or torch.seed())
            eos = self._tokenizer.eos_token_id
            generated: list[int] = []
            text = ""
            feed = ids[reused:]
            all_ids = list(ids)
            stats.finish_reason = "length"
            for _ in range(sampling.max_new_tokens):
                if cancel.is_set():
                    stats.finish_reason = "cancelled"
                    break
                out = self._model(
                    input_ids=torch.tensor([feed], device=self._model.device),
                    past_key_values=cache,
                    use_cache=True,
                )
                cache = out.past_key_values
                logits = out.logits[0, -1].float().cpu()
                if len(generated) < sampling.min_new_tokens and eos is not None:
                    logits[eos] = -float("inf")
                if self._logits_hook is not None:
                    logits = self._logits_hook(generated, logits)
                token = _sample(logits, sampling, generator)
                all_ids.append(token)
                if token == eos:
                    stats.finish_reason = "stop"
                    break
                generated.append(token)
                stats.completion_tokens = len(generated)
                decoded = self._tokenizer.decode(generated, skip_special_tokens=True)
                stop_at = _find_stop(decoded, sampling.stop)
                if stop_at >= 0:
                    if stop_at > len(text):
                        yield decoded[len(text) : stop_at]
                    stats.finish_reason = "stop"
                    break
                if len(decoded) > len(text) and not decoded.endswith("\ufffd"):
                    yield decoded[len(text) :]
                    text = decoded
                feed = [token]
            self._cache_ids, self._cache = all_ids[:-1] if all_ids else [], cache

    def _reuse_cache(self, ids: list[int]) -> tuple[object, int]:
        """The cache of the previous generation when ``ids`` extends its prompt."""
        cached = self._cache_ids
        common = 0
        for a, b in zip(cached, ids, strict=False):
            if a != b:
                break
            common += 1
        if self._cache is None or common < len(cached) or common == len(ids):
            return None, 0
        return self._cache, common


def _find_stop(text: str, stops: tuple[str, ...]) -> int:
    """Index of the first stop string in ``text``, or -1."""
    found = [i for i in (text.find(s) for s in stops) if i >= 0]
    return min(found) if found else -1


def _sample(logits, sampling: Sampling, generator) -> int:
    import torch

    if sampling.temperature <= 0:
        return int(torch.argmax(logits))
    probs = torch.softmax(logits / sampling.temperature, dim=-1)
    if sampling.top_p < 1.0:
        ordered, order = torch.sort(probs, descending=True)
        keep = torch.cumsum(ordered, dim=-1) - ordered < sampling.top_p
        probs = torch.zeros_like(probs).scatter(0, order[keep], ordered[keep])
        probs = probs / probs.sum()
    return int(torch.multinomial(probs, 1, generator=generator))
