"""Voice presets, voice prompt clips, and which character speaks with which.

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

Vocode clones a character's voice from a recorded prompt clip. A character's clips in the
voice prompt directory are every WAV, MP3 or FLAC file in ``<Character>/``, the file
``<Character>.<ext>`` (the one-file layout, which XTTS reads as ``<Character>.wav``) and the
original SOLAMI's ``<character>_<n>.<ext>`` (``Samantha_0.wav``, ``batman_1.mp3``); names are
compared without case. Each session speaks with one of them, chosen from its session id, so it
keeps its voice across turns. Every clip is read when the service starts: one that cannot be
read, is silent or is shorter than ``MIN_PROMPT_S`` stops the start.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import soundfile as sf

from solami import audio
from solami.errors import EngineUnavailable, InvalidInput

LANGUAGE = "en-US"
# File types a voice prompt clip may have (read by libsndfile).
PROMPT_EXTENSIONS = (".wav", ".mp3", ".flac")
# Longest stretch of a prompt clip encoded, in seconds; a longer clip is cut here. The original
# encodes each clip whole (its clips are a few seconds of speech); SoundStorm attends over the
# whole prompt again for every chunk it renders, so a long clip would slow every turn.
MAX_PROMPT_S = 15.0
# Shortest prompt clip accepted, in seconds: less carries too little of a voice to clone.
MIN_PROMPT_S = 1.0
# Peak amplitude under which a prompt clip is silent (-40 dBFS).
PROMPT_SILENCE = 0.01


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


@dataclasses.dataclass(frozen=True)
class PromptClip:
    """A recorded voice prompt, read and checked."""

    path: Path
    # Mono float32 samples at the rate asked for, at most ``MAX_PROMPT_S`` (or the cap given).
    samples: np.ndarray


def prompt_files(directory: Path, character: str) -> list[Path]:
    """``character``'s prompt clips in ``directory`` (see the module docstring), sorted by name."""
    wanted = character.lower()
    numbered = re.compile(re.escape(wanted) + r"_\d+")
    found: list[Path] = []
    for entry in sorted(directory.iterdir()):
        name = entry.name.lower()
        if entry.is_dir() and name == wanted:
            found += sorted(
                p for p in entry.iterdir() if p.is_file() and _is_clip(p) and p.name[0] != "."
            )
        elif entry.is_file() and _is_clip(entry):
            stem = entry.stem.lower()
            if stem == wanted or numbered.fullmatch(stem):
                found.append(entry)
    return found


def read_prompt(path: Path, rate_hz: int, cap_s: float = MAX_PROMPT_S) -> PromptClip:
    """The first ``cap_s`` seconds of a prompt clip, mono at ``rate_hz``; raises
    EngineUnavailable naming the file when it cannot be read, is silent or too short."""

    def refuse(reason: str) -> EngineUnavailable:
        return EngineUnavailable(f"voice prompt {path} cannot be used: {reason}")

    try:
        with sf.SoundFile(path) as clip:
            rate = clip.samplerate
            samples = clip.read(int(cap_s * rate), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, OSError) as exc:
        raise refuse(f"it cannot be read as audio ({exc})") from None
    samples = samples.mean(axis=1)
    if not np.isfinite(samples).all():
        raise refuse("it holds samples that are not numbers")
    if samples.size < MIN_PROMPT_S * rate:
        raise refuse(
            f"it is {samples.size / rate:.2f} s long; a voice prompt needs at least "
            f"{MIN_PROMPT_S:.0f} s of speech"
        )
    loud = np.flatnonzero(np.abs(samples) > PROMPT_SILENCE)
    if loud.size == 0:
        raise refuse(f"it is silent (no sample above {PROMPT_SILENCE})")
    if loud[-1] - loud[0] < MIN_PROMPT_S * rate:
        raise refuse(
            f"it has {(loud[-1] - loud[0]) / rate:.2f} s of sound; a voice prompt needs at "
            f"least {MIN_PROMPT_S:.0f} s of speech"
        )
    return PromptClip(path, audio.resample(samples, rate, rate_hz))


def load_prompts(
    directory: Path,
    rate_hz: int,
    cap_s: float = MAX_PROMPT_S,
    characters: Iterable[str] = CHARACTER_VOICES,
) -> dict[str, tuple[PromptClip, ...]]:
    """Every character's prompt clips, read and checked (characters without clips are left
    out); raises EngineUnavailable naming the first file that cannot be used."""
    if not directory.is_dir():
        raise EngineUnavailable(f"the voice prompt directory {directory} does not exist")
    clips = {}
    for character in characters:
        found = tuple(read_prompt(p, rate_hz, cap_s) for p in prompt_files(directory, character))
        if found:
            clips[character] = found
    return clips


def choose_prompt(clips: tuple[PromptClip, ...], session_id: str) -> PromptClip:
    """The clip a session speaks with: the same for every turn of the session, spread evenly
    over the clips across sessions (the original chose one at random per session)."""
    digest = hashlib.sha256(session_id.encode()).digest()
    return clips[int.from_bytes(digest[:8], "big") % len(clips)]


def _is_clip(path: Path) -> bool:
    return path.suffix.lower() in PROMPT_EXTENSIONS
