"""Voice presets and which character speaks with which.

All presets speak English (en-US). Each backend renders a preset its own way:

- Piper (one recorded speaker): ``pitch`` shifts pitch and formants together by resampling
  (the model is first run ``pitch`` times slower, so the duration is kept); ``rate`` scales the
  phoneme lengths (``length_scale = 1 / rate``); ``variation`` scales the generator and
  duration noise (``noise_scale``, ``noise_w``): lower is flatter, higher livelier.
- eSpeak NG: the preset's own eSpeak voice and variant, pitch ``50 + 100 * (pitch - 1)``
  (0-100), pitch range ``50 * variation``, rate ``175 * rate`` words per minute.
- XTTS-v2: the character's reference clip carries the voice; ``rate`` is the speed.

``effect`` is applied on top by every text backend ("robot": ring modulation).

| voice   | character | pitch | rate | variat. | eSpeak voice | effect | sounds                    |
|---------|-----------|-------|------|---------|--------------|--------|---------------------------|
| neutral | User      | 1.00  | 1.00 | 1.00    | en-us        |        | the recorded voice        |
| bright  | Samantha  | 1.25  | 1.05 | 1.15    | en-us+f3     |        | high, light, lively       |
| deep    | Batman    | 0.82  | 0.90 | 0.60    | en-us+m3     |        | low, slow, flat           |
| broad   | Trump     | 0.92  | 0.92 | 1.35    | en-us+m1     |        | low, deliberate, swinging |
| young   | Link      | 1.10  | 1.12 | 1.00    | en+m7 (GB)   |        | youthful, quick           |
| kitten  | Banaya    | 1.38  | 1.10 | 1.30    | en-us+f2     |        | very high, playful        |
| robot   | 11-45-G   | 0.95  | 0.95 | 0.30    | en-us+m4     | robot  | monotone, metallic        |
"""

from __future__ import annotations

import dataclasses

from solami.errors import InvalidInput

LANGUAGE = "en-US"


@dataclasses.dataclass(frozen=True)
class Voice:
    """A voice preset (see the module docstring for how each backend renders it)."""

    name: str
    # Pitch (and, for Piper, formant) factor; 1 = the recorded voice.
    pitch: float
    # Speaking-rate factor; > 1 is faster.
    rate: float
    # Intonation and timing variation factor; < 1 is flatter.
    variation: float
    # eSpeak NG voice and variant.
    espeak_voice: str
    # Post effect: "" or "robot".
    effect: str
    # How it sounds, for listings.
    description: str
    language: str = LANGUAGE


VOICES: dict[str, Voice] = {
    v.name: v
    for v in (
        Voice("neutral", 1.00, 1.00, 1.00, "en-us", "", "the recorded voice"),
        Voice("bright", 1.25, 1.05, 1.15, "en-us+f3", "", "high, light, lively"),
        Voice("deep", 0.82, 0.90, 0.60, "en-us+m3", "", "low, slow, flat"),
        Voice("broad", 0.92, 0.92, 1.35, "en-us+m1", "", "low, deliberate, swinging"),
        Voice("young", 1.10, 1.12, 1.00, "en+m7", "", "youthful, quick"),
        Voice("kitten", 1.38, 1.10, 1.30, "en-us+f2", "", "very high, playful"),
        Voice("robot", 0.95, 0.95, 0.30, "en-us+m4", "robot", "monotone, metallic"),
    )
}

CHARACTER_VOICES: dict[str, str] = {
    "User": "neutral",
    "Samantha": "bright",
    "Batman": "deep",
    "Trump": "broad",
    "Link": "young",
    "Banaya": "kitten",
    "11-45-G": "robot",
}

_CHARACTERS = {name.lower(): name for name in CHARACTER_VOICES}


def resolve(character: str, voice: str = "") -> tuple[str, Voice]:
    """The canonical character name and the voice to use; raises InvalidInput when unknown.

    ``voice`` overrides the character's voice; a request may name only a voice."""
    name = character.strip()
    if name:
        canonical = _CHARACTERS.get(name.lower())
        if canonical is None:
            raise InvalidInput(
                f"unknown character {character!r}; known characters: {', '.join(CHARACTER_VOICES)}"
            )
        name = canonical
    wanted = voice.strip().lower()
    if not wanted:
        if not name:
            raise InvalidInput(
                "the config names no character and no voice: set character to one of "
                f"{', '.join(CHARACTER_VOICES)}"
            )
        wanted = CHARACTER_VOICES[name]
    if wanted not in VOICES:
        raise InvalidInput(f"unknown voice {voice!r}; known voices: {', '.join(VOICES)}")
    return name, VOICES[wanted]
