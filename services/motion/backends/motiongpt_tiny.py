"""Tiny random MotionGPT checkpoints in the released layout, for tests and benchmarks.

``write_tiny_motiongpt`` writes what ``MotionGpt.load`` reads: the experiment config
(``config_<time>_train.yaml``, with the original's unresolved ``${...}`` references),
``checkpoints/last.ckpt`` (a Lightning-style dict whose ``state_dict`` has the original key
prefixes), the feature statistics and a ``gpt2/`` directory in the Hugging Face GPT-2 layout
(``config.json``, ``generation_config.json``, ``vocab.json``, ``merges.txt``,
``tokenizer.json``, ``tokenizer_config.json``). The tokenizer is a byte-level BPE trained here
on a few sentences, so nothing is downloaded. The architecture is the released one at any
size: ``MotionGptSizes()`` is tiny, ``MotionGptSizes.released()`` is the original's.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import torch
import yaml

from services.motion.backends.checkpoints import Stats, write_stats
from services.motion.backends.motiongpt import (
    CHECKPOINT_FILE,
    DEFAULT_STATS_FILE,
    DEFAULT_TOKENIZER_DIR,
    build_language_model,
    build_tokenizer,
    vq_config,
)
from services.motion.backends.vqvae import TransformConfig, TransformVQ, VQVae, randomize_codebook
from solami.avatar.features import BODY_FEATURE_DIMS, FEATURE_DIMS

CONFIG_FILE = "config_2000-01-01-00-00-00_train.yaml"
END_OF_TEXT = "<|endoftext|>"
# Sentences the tiny byte-level BPE learns its merges from.
BPE_SENTENCES = (
    "a person walks forward and waves with the right hand",
    "the man jumps up and down twice",
    "someone turns around slowly and sits down",
    "Generate text for the motion",
    "Show me a motion that captures the essence of",
)


@dataclasses.dataclass(frozen=True)
class MotionGptSizes:
    """Sizes of a MotionGPT checkpoint (the defaults are tiny)."""

    code_num: int = 16
    code_dim: int = 6
    vq_width: int = 12
    vq_depth: int = 2
    transform_code_num: int = 16
    transform_code_dim: int = 4
    n_embd: int = 16
    n_layer: int = 2
    n_head: int = 2
    n_positions: int = 384
    bpe_vocab: int = 300
    # EXPER.max_length: prompts are padded to this many tokens.
    max_length: int = 64

    @staticmethod
    def released() -> MotionGptSizes:
        """The released model's sizes (GPT-2 medium, 512-code VQ-VAEs)."""
        return MotionGptSizes(
            code_num=512,
            code_dim=512,
            vq_width=512,
            vq_depth=3,
            transform_code_num=256,
            transform_code_dim=16,
            n_embd=1024,
            n_layer=24,
            n_head=16,
            n_positions=1024,
            bpe_vocab=50257,
            max_length=256,
        )


def write_gpt2_dir(directory: Path, sizes: MotionGptSizes) -> Path:
    """A GPT-2 tokenizer and model config directory (no weights), like the original's
    ``deps/gpt2``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    directory.mkdir(parents=True, exist_ok=True)
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=sizes.bpe_vocab,
        special_tokens=[END_OF_TEXT],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(BPE_SENTENCES, trainer)
    bpe.save(str(directory / "tokenizer.json"))
    bpe.model.save(str(directory))  # vocab.json, merges.txt
    eos = bpe.token_to_id(END_OF_TEXT)
    config = {
        "architectures": ["GPT2LMHeadModel"],
        "model_type": "gpt2",
        "activation_function": "gelu_new",
        "attn_pdrop": 0.1,
        "embd_pdrop": 0.1,
        "resid_pdrop": 0.1,
        "initializer_range": 0.02,
        "layer_norm_epsilon": 1e-05,
        "n_ctx": sizes.n_positions,
        "n_positions": sizes.n_positions,
        "n_embd": sizes.n_embd,
        "n_head": sizes.n_head,
        "n_layer": sizes.n_layer,
        "vocab_size": bpe.get_vocab_size(),
        "bos_token_id": eos,
        "eos_token_id": eos,
    }
    files = {
        "config.json": config,
        "generation_config.json": {"bos_token_id": eos, "eos_token_id": eos},
        "tokenizer_config.json": {"model_max_length": sizes.n_positions},
    }
    for name, content in files.items():
        (directory / name).write_text(json.dumps(content, indent=2) + "\n")
    return directory


def experiment_config(sizes: MotionGptSizes, name: str = "Tiny_MotionGPT") -> dict:
    """The parts of the original's saved training config that the loader reads, with its
    ``${...}`` references left unresolved as ``OmegaConf.save`` leaves them."""

    def vq(code_num: int, code_dim: int, width: int, depth: int) -> dict:
        return {
            "target": "mGPT.archs.mgpt_vq.VQVae",
            "params": {
                "quantizer": "ema_reset",
                "code_num": code_num,
                "code_dim": code_dim,
                "output_emb_width": code_dim,
                "down_t": 2,
                "stride_t": 2,
                "width": width,
                "depth": depth,
                "dilation_growth_rate": 3,
                "norm": "None",
                "activation": "relu",
                "nfeats": "${DATASET.NFEATS}",
                "ablation": "${ABLATION}",
            },
        }

    body = vq(sizes.code_num, sizes.code_dim, sizes.vq_width, sizes.vq_depth)
    return {
        "NAME": name,
        "EXPER": {
            "motion_part": "body_hand_sep",
            "motion_repre": "local cont6d",
            "transform": True,
            "token_interleaved": False,
            "token_transform": True,
            "framerate": 30,
            "max_length": sizes.max_length,
        },
        "TRAIN": {"STAGE": "lm_pretrain"},
        "DATASET": {"NFEATS": 263},
        "ABLATION": {"use_length": False},
        "model": {
            "target": "mGPT.models.mgpt.MotionGPT",
            "params": {
                "condition": "text",
                "task": "t2m",
                "lm": "${lm.gpt2_medium}",
                "motion_vae": "${vq.default}",
                "motion_vae_body": "${vq.default}",
                "motion_vae_hand": "${vq.hand}",
                "motion_vae_transform": "${vq.transform}",
                "stage": "${TRAIN.STAGE}",
                "codebook_size": "${model.params.motion_vae_body.params.code_num}",
            },
        },
        "lm": {
            "gpt2_medium": {
                "target": "mGPT.archs.mgpt_lm.MLM",
                "params": {
                    "model_type": "gpt2",
                    "model_path": "./deps/gpt2",
                    "stage": "${TRAIN.STAGE}",
                    "motion_codebook_size": "${model.params.codebook_size}",
                    "ablation": "${ABLATION}",
                    "motion_part": "${EXPER.motion_part}",
                    "interleaved": "${EXPER.token_interleaved}",
                    "framerate": "${EXPER.framerate}",
                    "max_length": "${EXPER.max_length}",
                },
            }
        },
        "vq": {
            "default": body,
            "hand": vq(sizes.code_num, sizes.code_dim, sizes.vq_width, sizes.vq_depth),
            "transform": {
                "target": "mGPT.archs.mgpt_vq.VQVAE_Trans",
                "params": {
                    "quantizer": "ema_reset",
                    "code_num": sizes.transform_code_num,
                    "code_dim": sizes.transform_code_dim,
                    "output_emb_width": sizes.transform_code_dim,
                    "nfeats": 5,
                },
            },
        },
    }


def random_stats(seed: int) -> Stats:
    """Feature statistics of a plausible spread (tests decode to finite, bounded poses)."""
    generator = np.random.default_rng(seed)
    return Stats(
        generator.normal(0.0, 0.05, FEATURE_DIMS),
        generator.uniform(0.05, 0.2, FEATURE_DIMS),
        np.zeros(5),
        np.ones(5),
    )


def write_tiny_motiongpt(
    directory: Path, sizes: MotionGptSizes = MotionGptSizes(), seed: int = 0
) -> Path:
    """Writes a randomly initialised MotionGPT of ``sizes`` in the released layout."""
    directory.mkdir(parents=True, exist_ok=True)
    config = experiment_config(sizes)
    (directory / CONFIG_FILE).write_text(yaml.safe_dump(config, sort_keys=False))
    gpt2_dir = write_gpt2_dir(directory / DEFAULT_TOKENIZER_DIR, sizes)
    torch.manual_seed(seed)
    body = VQVae(vq_config(config["vq"]["default"]["params"], BODY_FEATURE_DIMS))
    hand = VQVae(vq_config(config["vq"]["hand"]["params"], FEATURE_DIMS - BODY_FEATURE_DIMS))
    transform = TransformVQ(
        TransformConfig(code_num=sizes.transform_code_num, code_dim=sizes.transform_code_dim)
    )
    generator = np.random.default_rng(seed)
    for model, dims in ((body, BODY_FEATURE_DIMS), (hand, FEATURE_DIMS - BODY_FEATURE_DIMS)):
        randomize_codebook(model, generator.standard_normal((2, 64, dims)), seed)
    randomize_codebook(transform, generator.standard_normal((64, 5)), seed)
    tokenizer = build_tokenizer(gpt2_dir, sizes.code_num)
    language_model = build_language_model(gpt2_dir, len(tokenizer))
    state = {}
    for prefix, module in (
        ("vae_body.", body),
        ("vae_hand.", hand),
        ("vae_transform.", transform),
        ("lm.language_model.", language_model),
    ):
        state.update({prefix + k: v.detach().clone() for k, v in module.state_dict().items()})
    checkpoint = directory / CHECKPOINT_FILE
    checkpoint.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"epoch": 0, "global_step": 0, "state_dict": state}, checkpoint)
    write_stats(directory / DEFAULT_STATS_FILE, random_stats(seed))
    return directory
