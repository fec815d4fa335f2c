"""Tiny SoundStorm and SpeechTokenizer checkpoints (the real architectures, random weights)
written where the tts service's loaders read them."""

from __future__ import annotations

from pathlib import Path

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
