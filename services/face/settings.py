"""Settings of the face service (``SOLAMI_FACE_*``)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from solami.registry import SERVICES
from solami.settings import ServiceSettings, SettingsError

INFO = SERVICES["face"]
BACKENDS = ("viseme", "unitalker", "echo")
NORMALIZE_CHOICES = ("auto", "true", "false")


@dataclasses.dataclass(frozen=True)
class FaceSettings(ServiceSettings):
    """How the face service animates speech."""

    port: int = INFO.port
    metrics_port: int = INFO.metrics_port
    # Default backend: "viseme" (embedded CPU lip-sync) or "unitalker" (GPU, weights from a path);
    # "echo" is a benchmarking profile (neutral frames at once) that must never serve users.
    backend: str = "viseme"
    # Longest accepted audio per Animate stream, in seconds.
    max_audio_s: float = 120.0
    # Frames per FaceFrames message when streaming (6 frames = 200 ms).
    frames_per_block: int = 6
    # Seed of the blink, gaze and head-sway schedule (same seed, same idle motion).
    seed: int = 7
    # Strength of blinks, gaze, brow and head motion, 0 (frozen) to 1.
    idle_motion: float = 1.0
    # UniTalker checkpoint (a flat state_dict as released); empty = UniTalker unavailable.
    unitalker_weights: Path | None = None
    # Torch device for UniTalker ("cpu", "cuda").
    device: str = "cpu"
    # Torch CPU threads for UniTalker.
    cpu_threads: int = 2
    # Style (identity) row of UniTalker's embedding; -1 = the last row, the shared style.
    unitalker_style: int = -1
    # Zero-mean/unit-variance input like the encoder's feature extractor: "auto" picks by
    # encoder (WavLM base: off, layer-norm encoders such as wav2vec2-large-xlsr: on).
    unitalker_normalize: str = "auto"
    # UniTalker window and overlap, in seconds (long audio is cut and cross-faded).
    unitalker_window_s: float = 25.0
    unitalker_overlap_s: float = 5.0
    # Audio UniTalker needs beyond a streamed block before the block is final, in seconds.
    unitalker_lookahead_s: float = 1.0

    def validate(self, prefix: str = "") -> None:
        super().validate(prefix)
        if self.backend not in BACKENDS:
            raise SettingsError(
                f"{prefix}BACKEND must be one of {', '.join(BACKENDS)}, got {self.backend!r}"
            )
        if self.backend == "unitalker" and self.unitalker_weights is None:
            raise SettingsError(
                f"{prefix}BACKEND=unitalker needs {prefix}UNITALKER_WEIGHTS (checkpoint path)"
            )
        if self.max_audio_s <= 0:
            raise SettingsError(f"{prefix}MAX_AUDIO_S must be > 0, got {self.max_audio_s}")
        if self.frames_per_block < 1:
            raise SettingsError(
                f"{prefix}FRAMES_PER_BLOCK must be >= 1, got {self.frames_per_block}"
            )
        if not 0.0 <= self.idle_motion <= 1.0:
            raise SettingsError(f"{prefix}IDLE_MOTION must be in [0, 1], got {self.idle_motion}")
        if self.cpu_threads < 1:
            raise SettingsError(f"{prefix}CPU_THREADS must be >= 1, got {self.cpu_threads}")
        if self.unitalker_normalize not in NORMALIZE_CHOICES:
            raise SettingsError(
                f"{prefix}UNITALKER_NORMALIZE must be one of {', '.join(NORMALIZE_CHOICES)}, "
                f"got {self.unitalker_normalize!r}"
            )
        if not 0 <= self.unitalker_overlap_s < self.unitalker_window_s:
            raise SettingsError(
                f"{prefix}UNITALKER_OVERLAP_S must be >= 0 and below UNITALKER_WINDOW_S"
            )
        if self.unitalker_lookahead_s < 0:
            raise SettingsError(f"{prefix}UNITALKER_LOOKAHEAD_S must be >= 0")
