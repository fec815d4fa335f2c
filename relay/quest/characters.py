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


def character_for(char_id: str) -> str:
    """The model character of a Unity char_id (ValueError when unknown)."""
    if char_id not in UNITY_CHARACTERS:
        known = ", ".join(UNITY_CHARACTERS)
        raise ValueError(f"unknown char_id {char_id!r}; known: {known}")
    return UNITY_CHARACTERS[char_id]
