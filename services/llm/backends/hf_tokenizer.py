"""Prompt-side operations on a Hugging Face tokenizer, shared by the backends that load one
(transformers, vLLM)."""

from __future__ import annotations

from services.llm.vocabulary import SPEECH_OPEN
from solami.errors import EngineUnavailable


class HfTokenizerPrompts:
    """Mixin: token counting, chat template and SOLAMI vocabulary check via ``_tokenizer``."""

    _tokenizer: object

    @property
    def supports_solami(self) -> bool:
        return SPEECH_OPEN in self._tokenizer.get_vocab()

    def count_tokens(self, text: str) -> int:
        return len(self._tokenizer(text).input_ids)

    def chat_prompt(self, messages: list[dict[str, str]]) -> str:
        if not self._tokenizer.chat_template:
            raise EngineUnavailable("this model has no chat template for the agent methods")
        return self._tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=True
        )
