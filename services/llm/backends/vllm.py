"""vLLM for GPU nodes: ``AsyncLLMEngine`` with prefix caching, so a session's growing history
is served from the KV cache instead of being recomputed.

The model directory is a Hugging Face checkpoint (the SOLAMI LLM with its added vocabulary, or
a chat model for the agent methods), read from a path (a read-only volume in Kubernetes).

Prompts reach vLLM as token ids. A SOLAMI checkpoint's prompt is encoded by the slow
LlamaTokenizer, as the original served it (vLLM ``tokenizer_mode='slow'``, which current vLLM
and transformers no longer have); vLLM's own tokenizer only decodes the reply.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

from services.llm.backends.base import GenerationStats, Sampling
from services.llm.backends.hf_tokenizer import HfTokenizerPrompts
from services.llm.settings import LlmSettings
from solami.errors import EngineUnavailable


class VllmGenerator(HfTokenizerPrompts):
    """Continuous batching: many generations share the engine concurrently."""

    name = "vllm"

    def __init__(self, settings: LlmSettings) -> None:
        self._settings = settings
        self._engine = None

    def load(self) -> None:
        from transformers import AutoTokenizer
        from vllm import AsyncEngineArgs, AsyncLLMEngine

        try:
            self._tokenizer = AutoTokenizer.from_pretrained(self._settings.model)
        except (OSError, ValueError) as exc:
            raise EngineUnavailable(f"vLLM cannot load {self._settings.model}: {exc}") from exc
        self._load_slow_if_solami(Path(self._settings.model))
        args = AsyncEngineArgs(
            model=self._settings.model,
            tokenizer=self._settings.model,
            tensor_parallel_size=self._settings.tensor_parallel_size,
            gpu_memory_utilization=self._settings.gpu_memory_utilization,
            max_model_len=self._settings.context_tokens,
            enable_prefix_caching=True,
            disable_log_stats=True,
        )
        try:
            self._engine = AsyncLLMEngine.from_engine_args(args)
        except (OSError, ValueError) as exc:
            raise EngineUnavailable(f"vLLM cannot load {self._settings.model}: {exc}") from exc

    @property
    def healthy(self) -> bool:
        """False once vLLM's engine loop has died (the service then reports NOT_SERVING)."""
        return self._engine is not None and not getattr(self._engine, "errored", False)

    def shutdown(self) -> None:
        if self._engine is not None:
            self._engine.shutdown()
            self._engine = None

    async def stream(
        self, prompt: str, sampling: Sampling, stats: GenerationStats
    ) -> AsyncIterator[str]:
        from vllm import SamplingParams
        from vllm.sampling_params import RequestOutputKind

        params = SamplingParams(
            temperature=sampling.temperature,
            top_p=sampling.top_p,
            max_tokens=sampling.max_new_tokens,
            min_tokens=sampling.min_new_tokens,
            presence_penalty=sampling.presence_penalty,
            seed=sampling.seed or None,
            stop=list(sampling.stop) or None,
            output_kind=RequestOutputKind.DELTA,
        )
        request_id = uuid.uuid4().hex
        finished = False
        if not self.healthy:
            raise EngineUnavailable("vLLM's engine has stopped; the service is restarting")
        tokens = {"prompt_token_ids": self.prompt_ids(prompt)}
        try:
            async for output in self._engine.generate(tokens, params, request_id):
                if output.prompt_token_ids is not None:
                    stats.prompt_tokens = len(output.prompt_token_ids)
                stats.cached_prompt_tokens = output.num_cached_tokens or 0
                completion = output.outputs[0]
                stats.completion_tokens += len(completion.token_ids)
                if completion.text:
                    yield completion.text
                if output.finished:
                    finished = True
                    stats.finish_reason = completion.finish_reason or "stop"
        finally:
            if not finished:
                stats.finish_reason = "cancelled"
                await self._engine.abort(request_id)
