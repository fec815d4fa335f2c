"""What llm backends implement and exchange with the engine: the ``TextGenerator`` interface
(llama.cpp, transformers, vLLM), the sampling options of a generation and its statistics."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from typing import Protocol


@dataclasses.dataclass(frozen=True)
class Sampling:
    """Sampling options of one generation."""

    temperature: float
    top_p: float
    max_new_tokens: int
    min_new_tokens: int = 0
    presence_penalty: float = 0.0
    seed: int = 0
    # Generation ends when one of these strings is produced (it is not returned).
    stop: tuple[str, ...] = ()
    # GBNF grammar the output must follow ("" = free); only backends with
    # ``supports_grammar`` read it.
    grammar: str = ""


@dataclasses.dataclass
class GenerationStats:
    """Filled in by a backend while it generates."""

    prompt_tokens: int = 0
    cached_prompt_tokens: int = 0
    completion_tokens: int = 0
    # "stop", "length" or "cancelled".
    finish_reason: str = ""


class TextGenerator(Protocol):
    """A loaded LLM that streams text for a prompt."""

    name: str

    def load(self) -> None: ...

    def shutdown(self) -> None: ...

    @property
    def supports_solami(self) -> bool:
        """True when the model's vocabulary holds the SOLAMI tokens."""
        ...

    def count_tokens(self, text: str) -> int: ...

    def chat_prompt(self, messages: list[dict[str, str]]) -> str:
        """The model's chat template applied to ``messages``, ready for generation."""
        ...

    def stream(self, prompt: str, sampling: Sampling, stats: GenerationStats) -> AsyncIterator[str]:
        """Text pieces as tokens are generated; closing the iterator stops generation."""
        ...
