"""Motion test assets: the real SOLAMI clips, tiny random tokenizers saved in the original
layout, and one all-MiniLM-L6-v2 embedder shared by the motion tests of a run."""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

import numpy as np

from services.motion import features
from services.motion.backends.checkpoints import random_tokenizers, save_tokenizers
from services.motion.backends.retrieval import TextEmbedder
from services.motion.backends.vqvae import BODY, HAND
from services.motion.features import Motion
from services.motion.library import MotionLibrary
from services.motion.skeleton import BUILT_IN

DATA = Path(__file__).resolve().parents[3] / "shared" / "solami-data" / "anim_data"
SMPLX_AI = DATA / "Smplx_ai.npz"
MOTION_AI = DATA / "motion_ai.npz"
# The full architectures at a width a 2-core CPU trains and runs in milliseconds.
TINY = {"width": 32, "code_dim": 16, "output_emb_width": 16, "depth": 2}
TINY_BODY = dataclasses.replace(BODY, **TINY)
TINY_HAND = dataclasses.replace(HAND, **TINY)


def smplx_ai() -> Motion:
    """The SOLAMI model output clip (236 frames, Y-up)."""
    with np.load(SMPLX_AI) as data:
        return Motion(data["poses"].astype(np.float64), data["trans"].astype(np.float64))


def relay_user_and_character() -> tuple[Motion, Motion]:
    """The original relay's Z-up copy: the user's clip and the character's pose."""
    with np.load(MOTION_AI) as data:
        user = Motion(data["poses_user"], data["trans_user"])
        character = Motion(data["poses_ai"], data["trans_ai"])
    return user, character


@functools.cache
def library_stats() -> tuple[np.ndarray, np.ndarray]:
    """Mean and std of the built-in library's features (so random models decode near real
    poses)."""
    library = MotionLibrary.load()
    feats = np.concatenate(
        [features.features_of(c.motion, BUILT_IN)[0] for c in library.clips.values()]
    )
    return feats.mean(0), np.maximum(feats.std(0), 1e-3)


def write_tiny_checkpoint(directory: Path, seed: int = 0) -> Path:
    """Random tiny tokenizers with the library's statistics, in the original layout."""
    tokenizers = random_tokenizers(TINY_BODY, TINY_HAND, seed=seed)
    mean, std = library_stats()
    stats = dataclasses.replace(tokenizers.stats, motion_mean=mean, motion_std=std)
    save_tokenizers(directory, dataclasses.replace(tokenizers, stats=stats))
    return directory


@functools.cache
def shared_embedder() -> TextEmbedder:
    """all-MiniLM-L6-v2 loaded once per test run."""
    embedder = TextEmbedder()
    embedder.load()
    return embedder
