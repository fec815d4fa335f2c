"""Motion tokenizer checkpoints in the original SOLAMI layout.

A checkpoint directory holds ``body.pth``, ``hand.pth`` and ``transform.pth`` (state dicts of
``VQVae``/``VQVAE_Trans``) and the feature statistics npz. The statistics are read in two
layouts: flat arrays (``motion_mean``, ``motion_std``, ``transform_mean``, ``transform_std``)
or the original ``all_mean_variance_post.npz`` (pickled dicts ``smplx_feature`` and
``transforms``), which is also what ``save_tokenizers`` writes. The directory is trusted
input, like any model file.

The architecture is read off the state dict shapes (width, code book, depth, levels), so the
original full-size files and the tiny models of the tests load through the same code.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch

from services.motion.backends.vqvae import (
    BODY,
    HAND,
    TRANSFORM,
    TransformConfig,
    TransformVQ,
    VQConfig,
    VQVae,
    randomize_codebook,
)
from solami.avatar.features import BODY_FEATURE_DIMS, FEATURE_DIMS, TRANSFORM_DIMS
from solami.errors import EngineUnavailable

BODY_FILE = "body.pth"
HAND_FILE = "hand.pth"
TRANSFORM_FILE = "transform.pth"
STATS_FILE = "mean_std.npz"
# The original keeps 5 of its 9 transform dims: 6D entries 0 and 2, position x, y, z.
TRANSFORM_PARTS = (0, 2, 6, 7, 8)
# A zero standard deviation is replaced by this (as the original) to avoid dividing by zero.
ZERO_STD_REPLACEMENT = 1e-9


@dataclasses.dataclass(frozen=True)
class Stats:
    """Mean and standard deviation of the 315-dim features and the 5-dim transform."""

    motion_mean: np.ndarray
    motion_std: np.ndarray
    transform_mean: np.ndarray
    transform_std: np.ndarray

    @staticmethod
    def identity() -> Stats:
        return Stats(
            np.zeros(FEATURE_DIMS),
            np.ones(FEATURE_DIMS),
            np.zeros(TRANSFORM_DIMS),
            np.ones(TRANSFORM_DIMS),
        )


@dataclasses.dataclass(frozen=True)
class Tokenizers:
    """The three motion tokenizers and their statistics, in eval mode."""

    body: VQVae
    hand: VQVae
    transform: TransformVQ
    stats: Stats
    source: str = ""


def _nested_stats(path: Path) -> Stats:
    with np.load(path, allow_pickle=True) as data:
        smplx = data["smplx_feature"].item()
        transforms = data["transforms"].item()
    parts = ("root_velocity", "root_height", "global_root_cont6d", "cont6d_local")
    relative = ("smplx_relative_cont6d", "smplx_relative_pos")

    def motion(key: str) -> np.ndarray:
        return np.concatenate([np.ravel(smplx[part][key]) for part in parts])

    def transform(key: str) -> np.ndarray:
        full = np.concatenate([np.ravel(transforms[part][key]) for part in relative])
        return full[list(TRANSFORM_PARTS)]

    return Stats(motion("mean"), motion("std"), transform("mean"), transform("std"))


def read_stats(path: Path) -> Stats:
    """Statistics from a flat or original-layout npz."""
    if not path.is_file():
        raise EngineUnavailable(f"motion statistics file not found: {path}")
    flat = ("motion_mean", "motion_std", "transform_mean", "transform_std")
    with np.load(path, allow_pickle=False) as data:
        keys = set(data.files)
        if set(flat) <= keys:
            stats = Stats(*(np.asarray(data[k], dtype=np.float64) for k in flat))
    if not set(flat) <= keys:
        if not {"smplx_feature", "transforms"} <= keys:
            raise EngineUnavailable(f"{path} holds no motion statistics (keys: {sorted(keys)})")
        stats = _nested_stats(path)
    sizes = (stats.motion_mean.shape, stats.transform_mean.shape)
    if sizes != ((FEATURE_DIMS,), (TRANSFORM_DIMS,)):
        raise EngineUnavailable(f"{path}: statistics have sizes {sizes}, expected 315 and 5")
    return dataclasses.replace(
        stats,
        motion_std=np.where(stats.motion_std == 0, ZERO_STD_REPLACEMENT, stats.motion_std),
        transform_std=np.where(stats.transform_std == 0, ZERO_STD_REPLACEMENT, stats.transform_std),
    )


def write_stats(path: Path, stats: Stats) -> None:
    """Writes ``stats`` in the original nested layout."""

    def part(lo: int, hi: int, shape: tuple[int, ...] = (-1,)) -> dict:
        return {
            "mean": stats.motion_mean[lo:hi].reshape(shape),
            "std": stats.motion_std[lo:hi].reshape(shape),
        }

    full_mean, full_std = np.zeros(9), np.ones(9)
    full_mean[list(TRANSFORM_PARTS)] = stats.transform_mean
    full_std[list(TRANSFORM_PARTS)] = stats.transform_std
    smplx = {
        "root_velocity": part(0, 2),
        "root_height": part(2, 3),
        "global_root_cont6d": part(3, 9),
        "cont6d_local": part(9, FEATURE_DIMS, (-1, 6)),
    }
    transforms = {
        "smplx_relative_cont6d": {"mean": full_mean[:6], "std": full_std[:6]},
        "smplx_relative_pos": {"mean": full_mean[6:], "std": full_std[6:]},
    }
    np.savez(
        path,
        smplx_feature=np.array(smplx, dtype=object),
        transforms=np.array(transforms, dtype=object),
    )


def _config_of(state: dict[str, torch.Tensor]) -> VQConfig:
    first = state["encoder.model.0.weight"]
    down_t = 0
    while f"encoder.model.{2 + down_t}.0.weight" in state:
        down_t += 1
    depth = 0
    while f"encoder.model.2.1.model.{depth}.conv1.weight" in state:
        depth += 1
    codebook = state["quantizer.codebook"]
    return VQConfig(
        nfeats=int(first.shape[1]),
        code_num=int(codebook.shape[0]),
        code_dim=int(codebook.shape[1]),
        output_emb_width=int(state[f"encoder.model.{2 + down_t}.weight"].shape[0]),
        down_t=down_t,
        width=int(first.shape[0]),
        depth=depth,
    )


def _load_state(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise EngineUnavailable(f"motion tokenizer checkpoint not found: {path}")
    state = torch.load(path, map_location="cpu", weights_only=True)
    return state.get("state_dict", state) if isinstance(state, dict) else state


def load_tokenizers(
    directory: Path, stats_file: str = STATS_FILE, device: str = "cpu"
) -> Tokenizers:
    """Builds the tokenizers from a checkpoint directory (strict state-dict loading)."""
    body_state = _load_state(directory / BODY_FILE)
    hand_state = _load_state(directory / HAND_FILE)
    transform_state = _load_state(directory / TRANSFORM_FILE)
    try:
        body = VQVae(_config_of(body_state))
        hand = VQVae(_config_of(hand_state))
        codebook = transform_state["quantizer.codebook"]
        transform = TransformVQ(
            TransformConfig(code_num=codebook.shape[0], code_dim=codebook.shape[1])
        )
        for model, state in ((body, body_state), (hand, hand_state), (transform, transform_state)):
            model.load_state_dict(state, strict=True)
    except (KeyError, RuntimeError) as exc:
        raise EngineUnavailable(
            f"{directory}: not a SOLAMI motion tokenizer checkpoint: {exc}"
        ) from None
    if (
        body.config.nfeats != BODY_FEATURE_DIMS
        or hand.config.nfeats != FEATURE_DIMS - BODY_FEATURE_DIMS
    ):
        raise EngineUnavailable(
            f"{directory}: body/hand tokenizers take {body.config.nfeats}/{hand.config.nfeats} "
            f"dims, expected {BODY_FEATURE_DIMS}/{FEATURE_DIMS - BODY_FEATURE_DIMS}"
        )
    stats = read_stats(directory / stats_file)
    models = tuple(m.to(device).eval() for m in (body, hand, transform))
    return Tokenizers(*models, stats, source=str(directory))


def save_tokenizers(directory: Path, tokenizers: Tokenizers, stats_file: str = STATS_FILE) -> None:
    """Writes the original layout into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, model in (
        (BODY_FILE, tokenizers.body),
        (HAND_FILE, tokenizers.hand),
        (TRANSFORM_FILE, tokenizers.transform),
    ):
        torch.save({k: v.cpu() for k, v in model.state_dict().items()}, directory / name)
    write_stats(directory / stats_file, tokenizers.stats)


def random_tokenizers(
    body: VQConfig = BODY,
    hand: VQConfig = HAND,
    transform: TransformConfig = TRANSFORM,
    seed: int = 0,
) -> Tokenizers:
    """Randomly initialised tokenizers of the given architectures (tests, benchmarks); the
    codebooks are spread over the encoders' outputs for unit-variance input."""
    torch.manual_seed(seed)
    generator = np.random.default_rng(seed)
    models = (VQVae(body), VQVae(hand), TransformVQ(transform))
    samples = (
        generator.standard_normal((4, 64, body.nfeats)),
        generator.standard_normal((4, 64, hand.nfeats)),
        generator.standard_normal((256, transform.nfeats)),
    )
    for model, sample in zip(models, samples, strict=True):
        randomize_codebook(model, sample, seed)
        model.eval()
    return Tokenizers(*models, Stats.identity(), source="random")
