"""The echo generator: a benchmarking profile that must never serve users.

``SOLAMI_LLM_BACKEND=echo`` loads no model: whatever the prompt, it streams the same short
agent reply, two ``<speech>`` sentences and a ``<motion>`` phrase, a word at a time as a real
backend streams tokens, with no delay. The reply goes through the service's real parsing
(sentences, motion text, retries), so a load test measures the relay and the stack around the
model, not the model. It has no SOLAMI vocabulary, so it serves the agent methods only.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

from services.llm.backends.base import GenerationStats, Sampling

# The reply every prompt gets, in the agent methods' format.
ECHO_SPEECH = "Nice to see you again! I am doing well, thank you for asking."
ECHO_MOTION = "wave hello"
ECHO_REPLY = f"<speech>{ECHO_SPEECH}</speech> <motion>{ECHO_MOTION}</motion>"
# Streamed pieces: a word with the space before it, or a tag, like a tokenizer's pieces.
_PIECE = re.compile(r"</?\w+>|\s*[^\s<]+")


class EchoGenerator:
    """A ``TextGenerator`` that streams ``ECHO_REPLY`` at once."""

    name = "echo"

    def load(self) -> None:
        """Nothing to load."""

    def shutdown(self) -> None:
        """Nothing to release."""

    @property
    def supports_solami(self) -> bool:
        return False

    def count_tokens(self, text: str) -> int:
        return len(_PIECE.findall(text))

    def chat_prompt(self, messages: list[dict[str, str]]) -> str:
        lines = [f"{m['role']}: {m['content']}" for m in messages]
        return "\n".join([*lines, "assistant:"])

    async def stream(
        self, prompt: str, sampling: Sampling, stats: GenerationStats
    ) -> AsyncIterator[str]:
        stats.prompt_tokens = self.count_tokens(prompt)
        for piece in _PIECE.findall(ECHO_REPLY)[: sampling.max_new_tokens]:
            stats.completion_tokens += 1
            yield piece
        stats.finish_reason = "stop"
