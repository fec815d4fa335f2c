"""The SOLAMI token vocabulary added to the base LLM (non-special tokens).

Speech units ``<🗣️n>`` (1024), body ``<🕺n>`` (512), hand ``<🤚n>`` (512), relative transform
``<🔀n>`` (256), the modality brackets and the conversation markers.
"""

from __future__ import annotations

import re

SPEECH_VOCAB = 1024
BODY_VOCAB = 512
HAND_VOCAB = 512
TRANS_VOCAB = 256

SPEECH_OPEN, SPEECH_CLOSE = "<sosp>", "<eosp>"
BODY_OPEN, BODY_CLOSE = "<sobo>", "<eobo>"
HAND_OPEN, HAND_CLOSE = "<soha>", "<eoha>"
USER_ROLE, CHARACTER_ROLE = "[Human]", "[MMGPT]"
USER_END, CHARACTER_END = "<eoh>", "<eos>"

_SPEECH_PREFIX, _BODY_PREFIX, _HAND_PREFIX, _TRANS_PREFIX = "🗣️", "🕺", "🤚", "🔀"

SPEECH_ID = re.compile(r"<🗣️(\d+)>")
BODY_ID = re.compile(r"<🕺(\d+)>")
HAND_ID = re.compile(r"<🤚(\d+)>")
TRANS_ID = re.compile(r"<🔀(\d+)>")


def speech_token(unit: int) -> str:
    return f"<{_SPEECH_PREFIX}{unit}>"


def body_token(code: int) -> str:
    return f"<{_BODY_PREFIX}{code}>"


def hand_token(code: int) -> str:
    return f"<{_HAND_PREFIX}{code}>"


def trans_token(code: int) -> str:
    return f"<{_TRANS_PREFIX}{code}>"


def added_tokens() -> list[str]:
    """Every token SOLAMI adds to the base vocabulary, in a stable order."""
    tokens = [
        SPEECH_OPEN,
        SPEECH_CLOSE,
        BODY_OPEN,
        BODY_CLOSE,
        HAND_OPEN,
        HAND_CLOSE,
        USER_ROLE,
        CHARACTER_ROLE,
        USER_END,
        CHARACTER_END,
    ]
    tokens += [speech_token(i) for i in range(SPEECH_VOCAB)]
    tokens += [body_token(i) for i in range(BODY_VOCAB)]
    tokens += [hand_token(i) for i in range(HAND_VOCAB)]
    tokens += [trans_token(i) for i in range(TRANS_VOCAB)]
    return tokens
