"""Tiny SoundStorm and SpeechTokenizer checkpoints (the real architectures, random weights)
written where the tts service's loaders read them, and voice prompt clips."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from services.speechtokenizer import FULL_SIZE_CONFIG, save_random_speechtokenizer
from services.tts.backends.soundstorm import SoundStormConfig, save_random_soundstorm

TINY_SOUNDSTORM = SoundStormConfig(dim=32, depth=1, heads=2, dim_head=16, conv_kernel_size=5)
TINY_SPEECHTOKENIZER = dict(
    FULL_SIZE_CONFIG, n_filters=8, dimension=32, semantic_dimension=16, lstm_layers=1
)
SOUNDSTORM_CHECKPOINT = "SoundStorm.pt"
SPEECHTOKENIZER_CHECKPOINT = "SpeechTokenizer.pt"


def save_tiny_vocode_models(root: Path) -> tuple[Path, Path]:
    """Writes both tiny models under ``root``; returns (soundstorm_dir, speechtokenizer_dir)."""
    soundstorm_dir = root / "soundstorm"
    speechtokenizer_dir = root / "speechtokenizer"
    save_random_soundstorm(soundstorm_dir, TINY_SOUNDSTORM, SOUNDSTORM_CHECKPOINT)
    save_random_speechtokenizer(
        speechtokenizer_dir, TINY_SPEECHTOKENIZER, SPEECHTOKENIZER_CHECKPOINT
    )
    return soundstorm_dir, speechtokenizer_dir


def write_prompt_clip(
    path: Path, seconds: float, rate_hz: int = 22_050, pitch_hz: float = 180.0, level: float = 0.3
) -> Path:
    """A voiced tone (``pitch_hz`` with a 3 Hz syllable swell) written as WAV, MP3 or FLAC by
    ``path``'s extension."""
    t = np.arange(int(seconds * rate_hz)) / rate_hz
    tone = level * np.sin(2 * np.pi * pitch_hz * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, tone.astype(np.float32), rate_hz)
    return path
