"""SOLAMI speech units -> waveform in a character's voice: SoundStorm + SpeechTokenizer decoder.

Each chunk of RVQ-1 units is completed to all eight RVQ layers by SoundStorm, prompted with
the character's voice (the 8-layer tokens of one of their recorded prompt clips, the one the
session's id picks, encoded whole up to the cap ``voices.MAX_PROMPT_S`` and cached per clip;
or of a prompt spoken by the text backend when they have none) followed by the last units of
the previous chunk. The SpeechTokenizer decoder renders the chunk together with that left
context; the audio of the chunk's last units is held back and cross-faded with its
re-rendering in the next chunk, so the chunks of one stream (one ``VocodeSession``) join
without a click (``tests/test_vocode_seams.py``). Separate streams share neither that context
nor the cross-fade, so audio rendered piece by piece in separate streams may jump where the
pieces meet: a caller voices a whole reply in one stream (the relay's ``solami`` method
does). The output has exactly 320 samples at 16 kHz (20 ms) per unit.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import torch

from services.speechtokenizer import load_speechtokenizer
from services.tts.backends.base import PromptSpeaker
from services.tts.backends.soundstorm import load_soundstorm
from services.tts.speech import VOCODE_RATE_HZ
from services.tts.voices import PromptClip, Voice, choose_prompt, load_prompts
from solami import audio
from solami.avatar.rates import UNIT_RATE_HZ
from solami.errors import InvalidInput

SAMPLE_RATE_HZ = VOCODE_RATE_HZ
SAMPLES_PER_UNIT = SAMPLE_RATE_HZ // UNIT_RATE_HZ
CODEBOOK_SIZE = 1024
NUM_LAYERS = 8
# Units at the end of a chunk whose audio waits for the next chunk (the cross-fade length).
CROSSFADE_UNITS = 2


class UnitVocoder:
    """Loads both models, keeps the per-character prompts and renders unit chunks (the
    ``Vocoder`` of the engine)."""

    def __init__(
        self,
        soundstorm_dir: Path,
        soundstorm_checkpoint: str,
        speechtokenizer_dir: Path,
        speechtokenizer_checkpoint: str,
        prompt_dir: Path | None,
        prompt_s: float,
        steps: int,
        context_units: int,
        device: str = "cpu",
    ) -> None:
        self._paths = (soundstorm_dir, soundstorm_checkpoint)
        self._tokenizer_paths = (speechtokenizer_dir, speechtokenizer_checkpoint)
        self._prompt_dir = prompt_dir
        self._prompt_s = prompt_s
        self._prompt_samples = int(prompt_s * SAMPLE_RATE_HZ)
        self.steps = steps
        self.context_units = context_units
        self._device = device
        self._soundstorm = None
        self._tokenizer = None
        # Each character's recorded prompt clips, read and checked by ``load``.
        self._clips: dict[str, tuple[PromptClip, ...]] = {}
        # (character, "clip" + its path | "voice" + the voice name) -> prompt tokens.
        self._prompts: dict[tuple[str, str, str], torch.Tensor] = {}
        # One rendering at a time: torch already uses every core.
        self.lock = threading.Lock()

    def load(self) -> None:
        # The prompt clips first: a bad one stops the start before the models take time to load.
        if self._prompt_dir is not None:
            self._clips = load_prompts(self._prompt_dir, SAMPLE_RATE_HZ, self._prompt_s)
        self._soundstorm = load_soundstorm(*self._paths, device=self._device)
        self._tokenizer = load_speechtokenizer(*self._tokenizer_paths, device=self._device)

    def prompt(
        self, character: str, voice: Voice, speak: PromptSpeaker, session_id: str = ""
    ) -> torch.Tensor:
        """The (1, frames, 8) prompt tokens a session of a character speaks with, encoded once.

        A character with recorded clips speaks with the one ``session_id`` picks, whatever the
        voice; without one the prompt is spoken in ``voice``, so it is cached per voice."""
        clips = self._clips.get(character, ())
        clip = choose_prompt(clips, session_id) if clips else None
        key = (
            (character, "voice", voice.name)
            if clip is None
            else (character, "clip", str(clip.path))
        )
        with self.lock:
            cached = self._prompts.get(key)
        if cached is not None:
            return cached
        if clip is not None:
            samples = clip.samples
        else:
            spoken, rate = speak(voice, character)
            samples = audio.resample(spoken, rate, SAMPLE_RATE_HZ)[: self._prompt_samples]
        wav = torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32))
        with self.lock, torch.inference_mode():
            codes = self._tokenizer.encode(wav.view(1, 1, -1).to(self._device), n_q=NUM_LAYERS)
            tokens = codes.permute(1, 2, 0).contiguous()
            self._prompts[key] = tokens
        return tokens

    def session(self, prompt: torch.Tensor) -> VocodeSession:
        return VocodeSession(self, prompt)

    def render(
        self, units: torch.Tensor, prompt: torch.Tensor, context: torch.Tensor
    ) -> tuple[torch.Tensor, np.ndarray]:
        """(1, n) units -> their (1, n, 8) codes and the audio of ``context`` + them."""
        with self.lock, torch.inference_mode():
            codes = self._soundstorm.generate(units, torch.cat([prompt, context], 1), self.steps)
            everything = torch.cat([context, codes], dim=1)
            wav = self._tokenizer.decode(everything.permute(2, 0, 1))
        return codes, wav.reshape(-1).float().cpu().numpy()


class VocodeSession:
    """One Vocode stream: chunks of units in, contiguous 16 kHz audio out."""

    def __init__(self, vocoder: UnitVocoder, prompt: torch.Tensor) -> None:
        self._vocoder = vocoder
        self._prompt = prompt
        self._context = prompt.new_zeros((1, 0, NUM_LAYERS))
        self._held = np.zeros(0, np.float32)
        self._overlap = min(CROSSFADE_UNITS, vocoder.context_units) * SAMPLES_PER_UNIT

    def add(self, units: np.ndarray) -> np.ndarray:
        """Audio ready after this chunk; the last ``CROSSFADE_UNITS`` units' audio waits."""
        if units.size == 0:
            return np.zeros(0, np.float32)
        if units.min() < 0 or units.max() >= CODEBOOK_SIZE:
            bad = int(units[(units < 0) | (units >= CODEBOOK_SIZE)][0])
            raise InvalidInput(f"unit id {bad} is out of range: ids are in [0, {CODEBOOK_SIZE})")
        ids = torch.from_numpy(units.astype(np.int64)).view(1, -1).to(self._prompt.device)
        codes, wav = self._vocoder.render(ids, self._prompt, self._context)
        fresh = wav[self._context.shape[1] * SAMPLES_PER_UNIT - self._held.size :]
        if self._held.size:
            fade = np.linspace(0.0, 1.0, self._held.size, dtype=np.float32)
            fresh[: self._held.size] = self._held * (1 - fade) + fresh[: self._held.size] * fade
        keep = self._vocoder.context_units
        if keep:
            self._context = torch.cat([self._context, codes], dim=1)[:, -keep:]
        ready = max(0, fresh.size - self._overlap)
        self._held = fresh[ready:].astype(np.float32)
        return fresh[:ready].astype(np.float32)

    def finish(self) -> np.ndarray:
        """The held-back audio of the last units."""
        held, self._held = self._held, np.zeros(0, np.float32)
        return held
