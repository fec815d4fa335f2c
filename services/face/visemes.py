"""Articulation: a small space of mouth gestures, how phonemes and sounds map into it, and how
it maps onto the ARKit blendshapes.

An articulation vector has ``len(PARAMS)`` entries in [0, 1]:
- ``open``: jaw and lip opening (open vowels /a ɑ æ/ high, /i u/ low);
- ``round``: lip rounding and protrusion (/u o w ʃ/);
- ``spread``: lip corners pulled back (/i e s/);
- ``closure``: lips pressed together (/p b m/, short stops inside speech);
- ``labiodental``: lower lip under the upper teeth (/f v/);
- ``tongue``: tongue tip between the teeth (/θ ð/).
"""

from __future__ import annotations

import numpy as np

from solami.avatar.face import CHANNEL_COUNT, INDEX

PARAMS = ("open", "round", "spread", "closure", "labiodental", "tongue")
OPEN, ROUND, SPREAD, CLOSURE, LABIODENTAL, TONGUE = range(len(PARAMS))

# Marks eSpeak NG adds to IPA symbols that do not change the mouth shape.
_IGNORED_MARKS = str.maketrans("", "", "ˈˌːˑ͡‿̩̯̃")

# Mouth gesture of each IPA symbol (eSpeak NG's English inventory and neighbours); a symbol
# not listed falls back to its first character. Values: open, round, spread, closure,
# labiodental, tongue.
_TABLE: dict[str, tuple[float, ...]] = {
    # open and mid vowels
    "a": (1.0, 0.0, 0.1, 0, 0, 0), "ɑ": (1.0, 0.0, 0.0, 0, 0, 0), "æ": (0.85, 0.0, 0.35, 0, 0, 0),
    "ɐ": (0.7, 0.0, 0.1, 0, 0, 0), "ʌ": (0.7, 0.0, 0.1, 0, 0, 0), "ɒ": (0.85, 0.4, 0.0, 0, 0, 0),
    "ɔ": (0.75, 0.6, 0.0, 0, 0, 0), "ɛ": (0.6, 0.0, 0.45, 0, 0, 0), "ɜ": (0.45, 0.2, 0.0, 0, 0, 0),
    "ə": (0.4, 0.0, 0.05, 0, 0, 0), "ɚ": (0.35, 0.3, 0.0, 0, 0, 0), "ᵻ": (0.3, 0.0, 0.3, 0, 0, 0),
    # close vowels
    "e": (0.45, 0.0, 0.6, 0, 0, 0), "ɪ": (0.3, 0.0, 0.55, 0, 0, 0), "i": (0.2, 0.0, 0.9, 0, 0, 0),
    "o": (0.5, 0.8, 0.0, 0, 0, 0), "ʊ": (0.3, 0.7, 0.0, 0, 0, 0), "u": (0.2, 1.0, 0.0, 0, 0, 0),
    "y": (0.2, 0.9, 0.0, 0, 0, 0), "ø": (0.4, 0.8, 0.0, 0, 0, 0),
    # consonants
    "p": (0.0, 0.0, 0.0, 1, 0, 0), "b": (0.0, 0.0, 0.0, 1, 0, 0), "m": (0.0, 0.0, 0.0, 1, 0, 0),
    "f": (0.1, 0.0, 0.1, 0, 1, 0), "v": (0.1, 0.0, 0.1, 0, 1, 0),
    "θ": (0.2, 0.0, 0.1, 0, 0, 1), "ð": (0.2, 0.0, 0.1, 0, 0, 1),
    "t": (0.25, 0.0, 0.2, 0, 0, 0), "d": (0.25, 0.0, 0.2, 0, 0, 0), "n": (0.2, 0.0, 0.2, 0, 0, 0),
    "l": (0.3, 0.0, 0.2, 0, 0, 0), "ɾ": (0.3, 0.0, 0.2, 0, 0, 0), "ɫ": (0.3, 0.1, 0.1, 0, 0, 0),
    "s": (0.12, 0.0, 0.5, 0, 0, 0), "z": (0.12, 0.0, 0.5, 0, 0, 0),
    "ʃ": (0.2, 0.75, 0.0, 0, 0, 0), "ʒ": (0.2, 0.75, 0.0, 0, 0, 0),
    "tʃ": (0.2, 0.75, 0.0, 0, 0, 0), "dʒ": (0.2, 0.75, 0.0, 0, 0, 0),
    "k": (0.35, 0.0, 0.1, 0, 0, 0), "ɡ": (0.35, 0.0, 0.1, 0, 0, 0), "g": (0.35, 0.0, 0.1, 0, 0, 0),
    "ŋ": (0.3, 0.0, 0.1, 0, 0, 0), "x": (0.35, 0.0, 0.1, 0, 0, 0),
    "ɹ": (0.25, 0.5, 0.0, 0, 0, 0), "r": (0.25, 0.5, 0.0, 0, 0, 0),
    "w": (0.15, 1.0, 0.0, 0, 0, 0), "j": (0.2, 0.0, 0.7, 0, 0, 0),
    "h": (0.4, 0.0, 0.1, 0, 0, 0), "ʔ": (0.1, 0.0, 0.0, 0, 0, 0),
}  # fmt: skip

# Symbols that mean "no sound": the mouth goes to rest.
PAUSES = frozenset({"", "_", " ", "|", "||", "sil", "sp", "pau"})

# How each articulation parameter drives the ARKit channels (weight per unit of parameter).
_DRIVES: dict[int, dict[str, float]] = {
    OPEN: {
        "JawOpen": 0.45, "MouthLowerDownLeft": 0.35, "MouthLowerDownRight": 0.35,
        "MouthUpperUpLeft": 0.15, "MouthUpperUpRight": 0.15, "MouthFunnel": 0.05,
    },
    ROUND: {
        "MouthPucker": 0.55, "MouthFunnel": 0.35, "JawForward": 0.1,
        "MouthRollLower": 0.05, "MouthRollUpper": 0.05,
    },
    SPREAD: {
        "MouthStretchLeft": 0.35, "MouthStretchRight": 0.35, "MouthSmileLeft": 0.18,
        "MouthSmileRight": 0.18, "MouthDimpleLeft": 0.12, "MouthDimpleRight": 0.12,
        "CheekSquintLeft": 0.06, "CheekSquintRight": 0.06,
    },
    CLOSURE: {
        "MouthClose": 0.25, "MouthPressLeft": 0.35, "MouthPressRight": 0.35,
        "MouthShrugLower": 0.2, "MouthRollLower": 0.1, "MouthRollUpper": 0.1,
    },
    LABIODENTAL: {
        "MouthRollLower": 0.55, "MouthUpperUpLeft": 0.2, "MouthUpperUpRight": 0.2,
        "MouthShrugUpper": 0.1,
    },
    TONGUE: {"TongueOut": 0.25},
}  # fmt: skip


def _drive_matrix() -> np.ndarray:
    matrix = np.zeros((len(PARAMS), CHANNEL_COUNT), dtype=np.float32)
    for param, drives in _DRIVES.items():
        for name, weight in drives.items():
            matrix[param, INDEX[name]] = weight
    return matrix


DRIVE_MATRIX = _drive_matrix()


def phoneme_articulation(symbol: str) -> np.ndarray | None:
    """Articulation of one IPA phoneme; None for a pause."""
    clean = symbol.strip().translate(_IGNORED_MARKS)
    if clean in PAUSES:
        return None
    shape = _TABLE.get(clean) or _TABLE.get(clean[:2]) or _TABLE.get(clean[:1])
    if shape is None:
        # An unknown symbol is still a sound: a neutral, half-open mouth.
        shape = (0.35, 0.0, 0.0, 0, 0, 0)
    return np.array(shape, dtype=np.float32)


def to_blendshapes(articulation: np.ndarray) -> np.ndarray:
    """``(n, len(PARAMS))`` articulation -> ``(n, 61)`` weights in [0, 1]. A lip closure holds
    the jaw nearly shut whatever the opening says."""
    art = np.array(articulation, dtype=np.float32, copy=True)
    art[:, OPEN] *= 1.0 - 0.85 * art[:, CLOSURE]
    art[:, ROUND] *= 1.0 - 0.5 * art[:, CLOSURE]
    # An explicit sum (not a BLAS product) keeps every row bit-identical however frames are
    # batched, so streamed and whole-clip results agree exactly.
    weights = (art[:, :, None] * DRIVE_MATRIX[None, :, :]).sum(axis=1)
    return np.clip(weights, 0.0, 1.0)
