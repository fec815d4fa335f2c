"""Conversation methods: the names of the original SOLAMI server (sessions, settings, the HTTP
API) and the contract's enum for each."""

from __future__ import annotations

from solami.v1 import llm_pb2

SOLAMI = "solami"
LLM_SPEECH = "llm+speech"
DLP_RETRIEVAL = "dlp+retrieval"
# Method name -> ConversationMethod.
METHOD_ENUMS: dict[str, int] = {
    SOLAMI: llm_pb2.CONVERSATION_METHOD_SOLAMI,
    LLM_SPEECH: llm_pb2.CONVERSATION_METHOD_LLM_SPEECH,
    DLP_RETRIEVAL: llm_pb2.CONVERSATION_METHOD_DLP_RETRIEVAL,
}
METHODS: tuple[str, ...] = tuple(METHOD_ENUMS)
# ConversationMethod -> method name.
METHOD_NAMES: dict[int, str] = {value: name for name, value in METHOD_ENUMS.items()}
