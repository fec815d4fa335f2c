"""Settings of the tts service (``SOLAMI_TTS_*``)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from services.tts.voices import MAX_PROMPT_S, MIN_PROMPT_S
from solami.registry import SERVICES
from solami.settings import ServiceSettings, SettingsError

INFO = SERVICES["tts"]
TEXT_BACKENDS = ("piper", "espeak", "xtts", "echo")


@dataclasses.dataclass(frozen=True)
class TtsSettings(ServiceSettings):
    """Which backend speaks and how Vocode renders SOLAMI speech units."""

    port: int = INFO.port
    metrics_port: int = INFO.metrics_port
    # Text backend: "piper" (CPU default, packaged voice), "espeak" (light fallback) or "xtts"
    # (GPU nodes, voice cloning); "echo" is a benchmarking profile (a tone at once) that must
    # never serve users.
    backend: str = "piper"
    # Piper voice model (.onnx, its .onnx.json beside it); empty = the packaged en_US joe voice.
    piper_model: Path | None = None
    # XTTS-v2 model directory (config.json, model.pth, vocab.json); required for "xtts".
    xtts_dir: Path | None = None
    # Directory of voice prompt clips (Vocode prompts: "<Character>/*.wav|mp3|flac",
    # "<Character>.wav" or the original's "<character>_<n>.mp3", one picked per session; XTTS
    # reference clips: "<Character>.wav"); a character without one gets a prompt spoken by the
    # text backend. Every clip is read and checked at start.
    voice_prompt_dir: Path | None = None
    # Torch device for XTTS and Vocode ("cpu", "cuda").
    device: str = "cpu"
    # CPU threads for inference.
    cpu_threads: int = 2
    # Longest text one Synthesize stream may carry, in characters.
    max_text_chars: int = 2000
    # Words of the first sentence spoken as their own piece so audio starts early (0 = off).
    lead_words: int = 5
    # Longest audio chunk sent in one message, in milliseconds.
    chunk_ms: int = 500
    # SoundStorm directory (config.json optional, checkpoint); empty = Vocode off.
    soundstorm_dir: Path | None = None
    # SoundStorm checkpoint file name inside soundstorm_dir.
    soundstorm_checkpoint: str = "SoundStorm.pt"
    # SpeechTokenizer directory (config.json + checkpoint) whose decoder renders the units.
    speechtokenizer_dir: Path | None = None
    # SpeechTokenizer checkpoint file name inside speechtokenizer_dir.
    speechtokenizer_checkpoint: str = "SpeechTokenizer.pt"
    # SoundStorm decoding steps: RVQ layer 2 takes steps + 1 sampled passes, layers 3-8 one pass
    # each (the original SOLAMI voice cloning uses 4).
    soundstorm_steps: int = 4
    # Longest stretch of a voice prompt clip given to SoundStorm, in seconds (see MAX_PROMPT_S).
    voice_prompt_s: float = MAX_PROMPT_S
    # Units of the previous chunk kept as context when rendering the next one.
    vocode_context_units: int = 25
    # Longest unit stream one Vocode call may carry, in seconds of speech.
    max_vocode_s: float = 120.0

    @property
    def vocode_enabled(self) -> bool:
        return self.soundstorm_dir is not None and self.speechtokenizer_dir is not None

    def validate(self, prefix: str = "") -> None:
        super().validate(prefix)
        if self.backend not in TEXT_BACKENDS:
            raise SettingsError(
                f"{prefix}BACKEND must be one of {', '.join(TEXT_BACKENDS)}, got {self.backend!r}"
            )
        if self.backend == "xtts" and self.xtts_dir is None:
            raise SettingsError(f"{prefix}XTTS_DIR must name the XTTS-v2 model directory")
        if (self.soundstorm_dir is None) != (self.speechtokenizer_dir is None):
            raise SettingsError(
                f"Vocode needs both {prefix}SOUNDSTORM_DIR and {prefix}SPEECHTOKENIZER_DIR"
            )
        for name in ("cpu_threads", "max_text_chars", "chunk_ms", "soundstorm_steps"):
            if getattr(self, name) < 1:
                raise SettingsError(f"{prefix}{name.upper()} must be >= 1")
        for name in ("lead_words", "vocode_context_units"):
            if getattr(self, name) < 0:
                raise SettingsError(f"{prefix}{name.upper()} must be >= 0")
        if self.max_vocode_s <= 0:
            raise SettingsError(f"{prefix}MAX_VOCODE_S must be > 0")
        if self.voice_prompt_s < MIN_PROMPT_S:
            raise SettingsError(
                f"{prefix}VOICE_PROMPT_S must be >= {MIN_PROMPT_S:g}: a shorter prompt carries "
                "too little of a voice"
            )
        if self.voice_prompt_dir is not None and not self.voice_prompt_dir.is_dir():
            raise SettingsError(
                f"{prefix}VOICE_PROMPT_DIR {str(self.voice_prompt_dir)!r} is not a directory"
            )
