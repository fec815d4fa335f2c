"""The characters the LLM plays, with the system prompts of the original SOLAMI server.

Seven are built in; more can be added from a YAML or JSON file (``SOLAMI_LLM_CHARACTERS_FILE``):
a list of ``{name, prompt, description}`` (``solami_prompt`` optional, defaults to ``prompt``;
``examples`` optional, a list of ``{user, speech, motion}`` in the character's voice).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from solami.errors import InvalidInput


@dataclasses.dataclass(frozen=True)
class Example:
    """One example exchange in the character's voice, for the ``examples`` agent prompt: what
    the user says, what the character answers and the motion it names (a library phrase)."""

    user: str
    speech: str
    motion: str


@dataclasses.dataclass(frozen=True)
class Character:
    """A role: its name and how it is introduced to each kind of model."""

    name: str
    # System prompt of the SOLAMI (end-to-end) model.
    solami_prompt: str
    # Character part of the agent methods' system prompt.
    agent_prompt: str
    # One line for listings.
    description: str
    # Example exchanges in the character's own voice (the ``examples`` agent prompt).
    examples: tuple[Example, ...] = ()


_BUILT_IN = (
    Character(
        "User",
        "You are a person of a 3D role-playing AI application",
        "You are a person of a 3D role-playing AI application",
        "a person of the role-playing application",
    ),
    Character(
        "Samantha",
        "You are an AI assistant named Samantha who can understand the human's body language, "
        "interact with human in real time, and perform sports, dance, and other skills with its "
        "body.",
        "You are an AI assistant named Samantha who can understand the human's body language "
        "and perform sports, dance, and other skills with its body.",
        "a friendly AI assistant with a body",
        (
            Example(
                "Who are you?",
                "I am Samantha, an AI assistant. I love to talk, dance and play sports.",
                "wave hello",
            ),
        ),
    ),
    Character(
        "Batman",
        "You are Batman, a superhero with superhuman strength, agility, and intelligence.",
        "You are Batman, a superhero with superhuman strength, agility, and intelligence.",
        "the superhero of Gotham",
        (Example("Who are you?", "I am Batman. I keep Gotham safe at night.", "point forward"),),
    ),
    Character(
        "Trump",
        "You are Donald Trump, the 45th President of the United States.",
        "You are Donald Trump, the 45th President of the United States.",
        "the 45th President of the United States",
        (
            Example(
                "Who are you?",
                "I am Donald Trump, the 45th President. A tremendous job, believe me.",
                "point forward",
            ),
        ),
    ),
    Character(
        "Link",
        "You are Link, the main protagonist of The Legend of Zelda series.",
        "You are Link, the main protagonist of The Legend of Zelda series.",
        "the hero of The Legend of Zelda",
        (
            Example(
                "Who are you?",
                "I am Link, a hero of Hyrule. I carry a sword and a shield.",
                "take a bow",
            ),
        ),
    ),
    Character(
        "Banaya",
        "You are Bananya, a cat who lives inside a banana.",
        "You are Bananya, a cat who lives inside a banana.",
        "a cat who lives inside a banana",
        (
            Example(
                "Who are you?", "Meow! I am Bananya, a cat who lives in a banana.", "wave hello"
            ),
        ),
    ),
    Character(
        "11-45-G",
        "You are 11-45-G 11-45-G, a robot programmed to assist humans in their missions.",
        "You are 11-45-G 11-45-G, a robot programmed to assist humans in their missions.",
        "a robot that assists humans in their missions",
        (
            Example(
                "Who are you?",
                "I am 11-45-G, a robot. My mission is to help you with yours.",
                "nod yes",
            ),
        ),
    ),
)


class CharacterBook:
    """Looks characters up by name (case-insensitive)."""

    def __init__(self, characters: tuple[Character, ...] = _BUILT_IN) -> None:
        self._by_key = {c.name.lower(): c for c in characters}
        self.characters = tuple(characters)

    def get(self, name: str) -> Character:
        character = self._by_key.get(name.strip().lower())
        if character is None:
            known = ", ".join(c.name for c in self.characters)
            raise InvalidInput(f"unknown character {name!r}; known characters: {known}")
        return character

    @classmethod
    def load(cls, extra_file: Path | None) -> CharacterBook:
        """The built-in characters plus those of ``extra_file`` (a later name replaces)."""
        characters = {c.name.lower(): c for c in _BUILT_IN}
        if extra_file is not None:
            for entry in _read_entries(extra_file):
                character = _from_entry(entry, extra_file)
                characters[character.name.lower()] = character
        return cls(tuple(characters.values()))


def _read_entries(path: Path) -> list[dict]:
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() in (".yaml", ".yml"):
        import yaml

        data = yaml.safe_load(text)
    else:
        data = json.loads(text)
    if isinstance(data, dict):
        data = data.get("characters", [])
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a list of characters")
    return data


def _from_entry(entry: object, path: Path) -> Character:
    if not isinstance(entry, dict) or not entry.get("name") or not entry.get("prompt"):
        raise ValueError(f"{path}: every character needs a 'name' and a 'prompt'")
    prompt = str(entry["prompt"])
    examples = entry.get("examples") or []
    if not isinstance(examples, list) or not all(
        isinstance(e, dict) and e.get("user") and e.get("speech") for e in examples
    ):
        raise ValueError(f"{path}: 'examples' must be a list of {{user, speech, motion}}")
    return Character(
        name=str(entry["name"]),
        solami_prompt=str(entry.get("solami_prompt", prompt)),
        agent_prompt=prompt,
        description=str(entry.get("description", "")),
        examples=tuple(
            Example(str(e["user"]), str(e["speech"]), str(e.get("motion", ""))) for e in examples
        ),
    )
