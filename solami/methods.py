"""Conversation methods: the names of the original SOLAMI server (sessions, settings, the HTTP
API), the contract's enum for each, and what each method does with the user's body and the
reply's motion.

The original server (``llama2_server_model.py`` in AlanJiang98/SOLAMI) accepts ``llm+speech``,
``dlp+retrieval``, ``dlp+motiongpt`` and ``dlp+motiongpt+retrieval`` for its LLM-agent
baselines; ``solami`` is the end-to-end model.
"""

from __future__ import annotations

import dataclasses

from solami.v1 import llm_pb2

SOLAMI = "solami"
LLM_SPEECH = "llm+speech"
DLP_RETRIEVAL = "dlp+retrieval"
DLP_MOTIONGPT = "dlp+motiongpt"
DLP_MOTIONGPT_RETRIEVAL = "dlp+motiongpt+retrieval"


@dataclasses.dataclass(frozen=True)
class Method:
    """What a conversation method does, as the original server runs it."""

    name: str
    # ConversationMethod of the contract.
    enum: int
    # The LLM writes ``<speech>…</speech> <motion>…</motion>`` (else speech only).
    motion_text: bool = False
    # The user's body motion of the turn is captioned into the user message's ``<motion>``.
    captions_user: bool = False
    # The reply's motion text is turned into motion by a generator (MotionGPT text -> motion)
    # rather than retrieved from the motion library.
    generates_motion: bool = False


_ALL = (
    Method(SOLAMI, llm_pb2.CONVERSATION_METHOD_SOLAMI),
    Method(LLM_SPEECH, llm_pb2.CONVERSATION_METHOD_LLM_SPEECH),
    Method(DLP_RETRIEVAL, llm_pb2.CONVERSATION_METHOD_DLP_RETRIEVAL, motion_text=True),
    Method(
        DLP_MOTIONGPT,
        llm_pb2.CONVERSATION_METHOD_DLP_MOTIONGPT,
        motion_text=True,
        captions_user=True,
        generates_motion=True,
    ),
    Method(
        DLP_MOTIONGPT_RETRIEVAL,
        llm_pb2.CONVERSATION_METHOD_DLP_MOTIONGPT_RETRIEVAL,
        motion_text=True,
        captions_user=True,
    ),
)
# Method name -> Method.
METHOD_INFO: dict[str, Method] = {method.name: method for method in _ALL}
METHODS: tuple[str, ...] = tuple(METHOD_INFO)
# The LLM-agent methods (a chat LLM's text; every method but "solami").
AGENT_METHODS: tuple[str, ...] = tuple(name for name in METHODS if name != SOLAMI)
# Method name -> ConversationMethod.
METHOD_ENUMS: dict[str, int] = {method.name: method.enum for method in _ALL}
# ConversationMethod -> method name.
METHOD_NAMES: dict[int, str] = {method.enum: method.name for method in _ALL}


def unknown_method(method: str) -> str:
    """The message for a method name that is not one of ``METHODS``."""
    return f"unknown method {method!r}; accepted: {', '.join(METHODS)}"
