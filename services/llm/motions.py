"""The motions an agent reply may name in its ``<motion>…</motion>``: one phrase per clip of the
packaged motion library (``services/motion/library_clips.py``), each one of that clip's own
descriptions, so that retrieval of the phrase finds the clip (``tests/test_llm_grammar.py``
checks it against the library).

A deployment whose motion library has other clips lists its phrases in a file
(``SOLAMI_LLM_MOTIONS_FILE``, one per line); the llm service knows the library only through
these phrases, never by importing the motion service.
"""

from __future__ import annotations

from pathlib import Path

# One description per packaged clip (clip name in the comment).
LIBRARY_PHRASES = (
    "wave hello",  # wave
    "nod yes",  # nod
    "shake the head",  # head_shake
    "take a bow",  # bow
    "clap hands",  # clap
    "shrug",  # shrug
    "point forward",  # point
    "think",  # thinking
    "celebrate",  # celebrate
    "dance",  # dance_step
    "stand still",  # idle
)


def load_phrases(path: Path | None) -> tuple[str, ...]:
    """The phrases of ``path`` (one a line, blank lines and ``#`` comments skipped), or the
    packaged library's when ``path`` is None."""
    if path is None:
        return LIBRARY_PHRASES
    lines = (line.split("#", 1)[0].strip() for line in path.read_text("utf-8").splitlines())
    phrases = tuple(dict.fromkeys(line for line in lines if line))
    if not phrases:
        raise ValueError(f"{path}: no motion phrases")
    bad = [p for p in phrases if any(c in p for c in '<>"\\') or not p.isascii()]
    if bad:
        raise ValueError(f"{path}: motion phrase {bad[0]!r} has a character outside plain ASCII")
    return phrases
