"""The headset's characters: the Unity ids it writes to ``char_id`` and the characters the
models know them as."""

from __future__ import annotations

# Unity character ids -> the characters the models know.
UNITY_CHARACTERS = {
    "Vrmgirl": "Samantha",
    "Kvrc": "11-45-G",
    "Chappie": "11-45-G",
    "Trump": "Trump",
    "Bnncat": "Banaya",
    "Link": "Link",
    "Batman": "Batman",
    "Smplx": "User",
}
DEFAULT_CHAR_ID = "Vrmgirl"
# The original relay's test character (``diamond_utils.py``: ``"Test":
# 'echo_default_character'``): the user's utterance and body come back unchanged, with no
# model involved. Shown on the SMPL-X rig.
ECHO_CHAR_ID = "Test"
ECHO_CHARACTER = "echo_default_character"
# Every char_id the relay accepts -> the character it plays.
CHARACTERS = {**UNITY_CHARACTERS, ECHO_CHAR_ID: ECHO_CHARACTER}


def character_for(char_id: str) -> str:
    """The model character of a char_id (ValueError when unknown)."""
    if char_id not in CHARACTERS:
        known = ", ".join(CHARACTERS)
        raise ValueError(f"unknown char_id {char_id!r}; known: {known}")
    return CHARACTERS[char_id]
