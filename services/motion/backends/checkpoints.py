"""Motion tokenizer checkpoints in the original SOLAMI layout.

A checkpoint directory holds ``body.pth``, ``hand.pth`` and ``transform.pth`` (state dicts of
``VQVae``/``VQVAE_Trans``) and the feature statistics npz. The statistics are read in two
layouts: flat arrays (``motion_mean``, ``motion_std``, ``transform_mean``, ``transform_std``)
or the original ``all_mean_variance_post.npz`` (pickled dicts ``smplx_feature`` and
``transforms``), which is also what ``save_tokenizers`` writes. The directory is trusted
input, like any model file.

The ``.pth`` files are what the original writes (``get_motion_code_for_7Bpretrain.py``):
``torch.save(model.vae_body.state_dict(), "body.pth")`` and the same for ``vae_hand`` and
``vae_transform``, plain state dicts without a prefix, which its server loads with
``strict=True``. The architecture is read off the state dict shapes (width, code book, depth,
levels, stride, transform hidden width), so the original full-size files and the tiny models of
the tests load through the same code; the dilation growth (3) and the ReLU activation are not
recorded in the files and are those of the original configs. ``tests/fixtures/motion_vqvae``
holds tiny checkpoints written by the original classes with their outputs, which these models
reproduce.
"""

from __future__ import annotations

import dataclasses
import pickle
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
from solami.avatar.rates import FRAMES_PER_TOKEN
from solami.errors import EngineUnavailable

BODY_FILE = "body.pth"
HAND_FILE = "hand.pth"
TRANSFORM_FILE = "transform.pth"
STATS_FILE = "mean_std.npz"
# The original keeps 5 of its 9 transform dims: 6D entries 0 and 2, position x, y, z.
TRANSFORM_PARTS = (0, 2, 6, 7, 8)
# A zero standard deviation is replaced by this (as the original) to avoid dividing by zero.
ZERO_STD_REPLACEMENT = 1e-9
# How many missing or unexpected keys a layout error names.
KEYS_NAMED = 3


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


class LayoutError(ValueError):
    """A state dict that is not the original module's (missing, unexpected or misshapen keys)."""


def _layout(name: str) -> str:
    """What ``name`` must hold, for the error messages."""
    part = Path(name).stem
    kind = "VQVAE_Trans" if name == TRANSFORM_FILE else "VQVae"
    return (
        f"the original {kind} state dict (keys encoder.*, decoder.*, quantizer.codebook, no "
        f"prefix) as torch.save(model.vae_{part}.state_dict(), {name!r}) writes it"
    )


def _first(keys: list[str]) -> str:
    more = f" and {len(keys) - KEYS_NAMED} more" if len(keys) > KEYS_NAMED else ""
    return ", ".join(keys[:KEYS_NAMED]) + more


def _prefix_hint(state: dict[str, torch.Tensor]) -> str:
    """Names a prefix in front of the original keys (a training checkpoint's ``vae_body.``)."""
    for key in state:
        for marker in ("encoder.", "quantizer."):
            if marker in key and not key.startswith(marker):
                prefix = key[: key.index(marker)]
                return (
                    f"; its keys carry the prefix {prefix!r} (a whole-model training checkpoint?): "
                    "save only the tokenizer's own state dict"
                )
    return ""


def _check_keys(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        found = []
        if missing:
            found.append(f"missing {_first(missing)}")
        if unexpected:
            found.append(f"unexpected {_first(unexpected)}")
        raise LayoutError("; ".join(found) + _prefix_hint(state))
    wrong = [k for k, v in expected.items() if tuple(state[k].shape) != tuple(v.shape)]
    if wrong:
        shapes = ", ".join(
            f"{k} {tuple(state[k].shape)} (expected {tuple(expected[k].shape)})"
            for k in wrong[:KEYS_NAMED]
        )
        raise LayoutError(f"misshapen {shapes}")


def _require(state: dict[str, torch.Tensor], *keys: str) -> None:
    missing = [k for k in keys if k not in state]
    if missing:
        parts = ("encoder.", "decoder.", "quantizer.")
        unexpected = [k for k in state if not k.startswith(parts)]
        found = f"missing {_first(missing)}"
        if unexpected:
            found += f"; unexpected {_first(unexpected)}"
        raise LayoutError(found + _prefix_hint(state))


def _config_of(state: dict[str, torch.Tensor]) -> VQConfig:
    _require(state, "encoder.model.0.weight", "encoder.model.2.0.weight", "quantizer.codebook")
    first = state["encoder.model.0.weight"]
    down_t = 0
    while f"encoder.model.{2 + down_t}.0.weight" in state:
        down_t += 1
    depth = 0
    while f"encoder.model.2.1.model.{depth}.conv1.weight" in state:
        depth += 1
    _require(state, f"encoder.model.{2 + down_t}.weight")
    codebook = state["quantizer.codebook"]
    return VQConfig(
        nfeats=int(first.shape[1]),
        code_num=int(codebook.shape[0]),
        code_dim=int(codebook.shape[1]),
        output_emb_width=int(state[f"encoder.model.{2 + down_t}.weight"].shape[0]),
        down_t=down_t,
        # The down-sampling convolutions have kernel 2 * stride.
        stride_t=int(state["encoder.model.2.0.weight"].shape[-1]) // 2,
        width=int(first.shape[0]),
        depth=depth,
    )


def _transform_config_of(state: dict[str, torch.Tensor]) -> TransformConfig:
    _require(state, "encoder.fc1.weight", "quantizer.codebook")
    fc1 = state["encoder.fc1.weight"]
    codebook = state["quantizer.codebook"]
    return TransformConfig(
        nfeats=int(fc1.shape[1]),
        code_num=int(codebook.shape[0]),
        code_dim=int(codebook.shape[1]),
        hidden_scale=max(1, int(fc1.shape[0]) // 16),
    )


def _load_state(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise EngineUnavailable(f"motion tokenizer checkpoint not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError) as exc:
        raise EngineUnavailable(
            f"{path}: not a plain torch state dict (weights-only load: {type(exc).__name__}); "
            f"expected {_layout(path.name)}"
        ) from None
    state = state.get("state_dict", state) if isinstance(state, dict) else state
    if not isinstance(state, dict):
        raise EngineUnavailable(f"{path}: not a state dict; expected {_layout(path.name)}")
    return state


def _build(path: Path, state: dict[str, torch.Tensor]) -> VQVae | TransformVQ:
    """The model of one file, loaded strictly; a bad layout names the first bad keys."""
    try:
        if path.name == TRANSFORM_FILE:
            model: VQVae | TransformVQ = TransformVQ(_transform_config_of(state))
        else:
            config = _config_of(state)
            if config.stride_t != 2 or config.frames_per_token != FRAMES_PER_TOKEN:
                raise LayoutError(
                    f"{config.down_t} down-sampling levels of stride {config.stride_t} give "
                    f"{config.frames_per_token} frames per token; SOLAMI uses 2 levels of "
                    f"stride 2 ({FRAMES_PER_TOKEN} frames per token, and the original decoder "
                    "always up-samples by 2)"
                )
            model = VQVae(config)
        _check_keys(model, state)
        model.load_state_dict(state, strict=True)
    except (LayoutError, RuntimeError) as exc:
        raise EngineUnavailable(
            f"{path}: not a SOLAMI motion tokenizer checkpoint: {exc}; "
            f"expected {_layout(path.name)}"
        ) from None
    return model


def load_tokenizers(
    directory: Path, stats_file: str = STATS_FILE, device: str = "cpu"
) -> Tokenizers:
    """Builds the tokenizers from a checkpoint directory (strict state-dict loading)."""
    body, hand, transform = (
        _build(directory / name, _load_state(directory / name))
        for name in (BODY_FILE, HAND_FILE, TRANSFORM_FILE)
    )
    if (
        body.config.nfeats != BODY_FEATURE_DIMS
        or hand.config.nfeats != FEATURE_DIMS - BODY_FEATURE_DIMS
    ):
        raise EngineUnavailable(
            f"{directory}: body/hand tokenizers take {body.config.nfeats}/{hand.config.nfeats} "
            f"dims, expected {BODY_FEATURE_DIMS}/{FEATURE_DIMS - BODY_FEATURE_DIMS}"
        )
    if transform.config.nfeats != TRANSFORM_DIMS:
        raise EngineUnavailable(
            f"{directory}: the transform tokenizer takes {transform.config.nfeats} dims, "
            f"expected {TRANSFORM_DIMS}"
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
