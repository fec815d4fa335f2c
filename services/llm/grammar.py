"""GBNF grammars (llama.cpp) that constrain an agent reply to its format while it is decoded:
``<speech>…</speech> <motion>PHRASE</motion>`` with PHRASE one of the motion library's phrases
(``services/llm/motions.py``), or ``<speech>…</speech>`` for methods without motion.

The speech is plain printable ASCII without ``<``, ``>`` or ``*`` (so no tags, emoji or
``*stage directions*``) and at most ``MAX_SPEECH_CHARS`` characters; the reply parser still caps
it at 20 words / 3 sentences, and generation stops once the whole reply is there.
"""

from __future__ import annotations

from collections.abc import Sequence

# Longest speech the grammar lets through (20 words of about 6 characters, and some room).
MAX_SPEECH_CHARS = 160
# Printable ASCII less '*' (0x2A), '<' (0x3C) and '>' (0x3E).
_SPEECH_CHAR = r"[ -)+-;=?-~]"


def _literal(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def agent_reply_grammar(with_motion: bool, motions: Sequence[str]) -> str:
    """The GBNF of one agent reply; ``motions`` are the phrases its ``<motion>`` may hold."""
    lines = [
        'root ::= "<speech>" first rest "</speech>"'
        + (' " <motion>" motion "</motion>"' if with_motion else ""),
        # The speech starts with a letter or digit: something to say, not a space or a dot.
        "first ::= [A-Za-z0-9]",
        f"rest ::= {_SPEECH_CHAR}{{0,{MAX_SPEECH_CHARS - 1}}}",
    ]
    if with_motion:
        if not motions:
            raise ValueError("a grammar with motion needs at least one motion phrase")
        lines.append("motion ::= " + " | ".join(_literal(m) for m in motions))
    return "\n".join(lines) + "\n"
