"""MotionGPT (the ``dlp+motiongpt`` baselines' model): the released layout loads strictly, and
our model reproduces the original code's prompts, token ids and decoded features
(``tests/fixtures/motiongpt``, made by SOLAMI's own MotionGPT classes; see its README)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from services.motion.backends.base import Caption, MotionGenerator
from services.motion.backends.motiongpt import (
    CHECKPOINT_FILE,
    DEFAULT_STATS_FILE,
    MotionGpt,
    read_state,
)
from services.motion.backends.motiongpt_tiny import CONFIG_FILE, write_tiny_motiongpt
from solami.avatar.features import BODY_FEATURE_DIMS
from solami.errors import EngineUnavailable
from tests.support.motion_models import smplx_ai

FIXTURE = Path(__file__).parent / "fixtures" / "motiongpt"
# The original's outputs and its checkpoint (the README's recipe regenerates them).
SHA256 = {
    "checkpoints/last.ckpt": "4ff49ebb5ac6c3af113275bc381e46c5194e6d13b49c5ddaf73cd3c747864a08",
    "golden.json": "ae3ba12565eb18e7fad3cd5da09b6d031f80c2711e46b8a63731b8454e287ee5",
    "golden.npz": "602ad944a01a9edd82465b6a755f3538166df98f5652a84f45afe31029bcfb09",
}
# Decoded features: bitwise equal on this machine; the tolerance allows other CPUs' kernels.
DECODE_ATOL = 1e-5


@pytest.fixture(scope="module")
def golden() -> tuple[dict, dict[str, np.ndarray]]:
    with np.load(FIXTURE / "golden.npz") as data:
        arrays = {name: data[name] for name in data.files}
    return json.loads((FIXTURE / "golden.json").read_text()), arrays


@pytest.fixture(scope="module")
def model() -> MotionGpt:
    return MotionGpt.load(FIXTURE)


def seeded(model: MotionGpt, seed: int) -> MotionGpt:
    model.options = dataclasses.replace(model.options, seed=seed)
    return model


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_motiongpt(tmp_path_factory.mktemp("motiongpt") / "tiny")


def copy_of(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    return target


def test_fixture_files_are_the_recorded_ones() -> None:
    for name, digest in SHA256.items():
        assert hashlib.sha256((FIXTURE / name).read_bytes()).hexdigest() == digest, name


def test_m2t_reproduces_the_original(model: MotionGpt, golden: tuple) -> None:
    cases, arrays = golden
    for case in cases["m2t"]:
        feats = torch.as_tensor(arrays[case["features"]])
        body = model.body.encode(feats[..., :BODY_FEATURE_DIMS])[0].numpy()
        hand = model.hand.encode(feats[..., BODY_FEATURE_DIMS:])[0].numpy()
        assert body.tolist() == case["body_ids"] and hand.tolist() == case["hand_ids"]
        sampled = seeded(model, case["seed"]).sample_m2t(body, hand)
        # The original batches three copies of the prompt; greedy answers are equal.
        assert sampled.prompts[0] == case["prompts"][0]
        assert sampled.sequences[0].tolist() == case["sequences"][0]
        caption = model.caption_ids(body, hand)
        assert caption.text == case["caption"] != ""
        assert 0.0 < caption.score <= 1.0


def test_t2m_reproduces_the_original(model: MotionGpt, golden: tuple) -> None:
    cases, arrays = golden
    chosen = set()
    for case in cases["t2m"]:
        sampled = seeded(model, case["seed"]).sample_t2m(case["text"])
        assert sampled.prompts == case["prompts"]
        assert sampled.sequences.tolist() == case["sequences"]
        ids = model.generate_ids(case["text"])
        assert ids.tolist() == case["outputs"][case["chosen"]]
        np.testing.assert_allclose(
            model.decode_features(ids), arrays[case["decoded"]][0], atol=DECODE_ATOL
        )
        chosen.add(case["chosen"])
    # The cases include an answer the original skipped (one body id) before the chosen one.
    assert max(chosen) > 0


def test_prompt_tokens_match_the_original(model: MotionGpt, golden: tuple) -> None:
    cases, _ = golden
    for case in cases["m2t"] + cases["t2m"]:
        encoded = model.tokenizer(
            case["prompts"], padding="max_length", max_length=model.config.max_length
        )
        assert encoded.input_ids == case["prompt_ids"]


def test_caption_of_a_real_clip(model: MotionGpt) -> None:
    caption = model.caption(smplx_ai())
    assert isinstance(caption, Caption) and isinstance(caption.text, str)
    assert caption.source == "motiongpt" and 0.0 < caption.score <= 1.0
    generator: MotionGenerator = model
    assert generator.caption(smplx_ai()) == caption


def test_generate_gives_smplx(model: MotionGpt) -> None:
    motion = seeded(model, 20).generate("a person walks forward")
    assert motion is not None
    frames = motion.n_frames
    assert frames % 4 == 0 and motion.poses.shape == (frames, 165)
    assert motion.trans.shape == (frames, 3)
    assert np.isfinite(motion.poses).all() and np.isfinite(motion.trans).all()
    again = model.generate("a person walks forward")
    np.testing.assert_array_equal(again.poses, motion.poses)
    capped = model.generate("a person walks forward", seconds=0.2)
    assert capped.n_frames == 6


def test_tiny_writer_loads_strictly(tiny: Path) -> None:
    model = MotionGpt.load(tiny)
    assert model.code_num == 16
    assert isinstance(model.caption(smplx_ai()).text, str)


def rewrite_state(directory: Path, change: callable) -> None:
    path = directory / CHECKPOINT_FILE
    checkpoint = torch.load(path, weights_only=True)
    change(checkpoint["state_dict"])
    torch.save(checkpoint, path)


def test_missing_and_unexpected_keys_are_named(tiny: Path, tmp_path: Path) -> None:
    missing = copy_of(tiny, tmp_path / "missing")
    rewrite_state(missing, lambda s: s.pop("vae_hand.quantizer.codebook"))
    with pytest.raises(EngineUnavailable, match=r"last\.ckpt.*missing vae_hand\.quantizer"):
        MotionGpt.load(missing)
    unexpected = copy_of(tiny, tmp_path / "unexpected")
    rewrite_state(unexpected, lambda s: s.update({"lm.extra_head.weight": torch.zeros(1)}))
    with pytest.raises(EngineUnavailable, match=r"unexpected lm\.extra_head\.weight"):
        MotionGpt.load(unexpected)
    misshapen = copy_of(tiny, tmp_path / "misshapen")
    rewrite_state(
        misshapen,
        lambda s: s.update({"vae_body.quantizer.codebook": torch.zeros(8, 6)}),
    )
    with pytest.raises(EngineUnavailable, match=r"misshapen vae_body\.quantizer\.codebook"):
        MotionGpt.load(misshapen)


def test_keys_the_original_writes_but_does_not_use_are_skipped(tiny: Path, tmp_path: Path) -> None:
    extra = copy_of(tiny, tmp_path / "extra")
    unused = {
        "smplx_model.v_template": torch.zeros(4, 3),
        "metrics.MTMetrics.FID": torch.zeros(()),
        "lm.language_model.transformer.h.0.attn.bias": torch.ones(1, 1, 4, 4),
        "lm.language_model.transformer.h.1.attn.masked_bias": torch.tensor(-1e4),
    }
    rewrite_state(extra, lambda s: s.update(unused))
    assert "vae_transform.quantizer.codebook" in read_state(extra / CHECKPOINT_FILE)
    MotionGpt.load(extra)


def test_missing_files_name_their_path(tiny: Path, tmp_path: Path) -> None:
    for name, pattern in (
        (CONFIG_FILE, r"config_\*_train\.yaml"),
        ("gpt2", r"tokenizer/config directory not found: .*gpt2"),
        (DEFAULT_STATS_FILE, "all_mean_variance_post.npz"),
        (CHECKPOINT_FILE, r"checkpoint not found: .*last\.ckpt"),
    ):
        broken = copy_of(tiny, tmp_path / name.replace("/", "_"))
        target = broken / name
        shutil.rmtree(target) if target.is_dir() else target.unlink()
        with pytest.raises(EngineUnavailable, match=pattern):
            MotionGpt.load(broken)


def test_gpt2_config_that_does_not_fit_the_checkpoint(tiny: Path, tmp_path: Path) -> None:
    other = copy_of(tiny, tmp_path / "other")
    config = json.loads((other / "gpt2" / "config.json").read_text())
    # Another width: every GPT-2 weight is misshapen.
    config["n_embd"] = 8
    (other / "gpt2" / "config.json").write_text(json.dumps(config))
    with pytest.raises(EngineUnavailable, match=r"misshapen lm\.language_model"):
        MotionGpt.load(other)


def test_original_tree_layout(tmp_path: Path) -> None:
    """The experiment directory inside an original checkout finds ``deps/gpt2`` there."""
    root = tmp_path / "motiongpt"
    experiment = copy_of(FIXTURE, root / "experiments" / "mgpt" / "Tiny")
    shutil.move(experiment / "gpt2", root / "deps" / "gpt2")
    assert MotionGpt.load(experiment).code_num == 16


def test_lightning_checkpoint_with_opaque_hyper_parameters() -> None:
    """The fixture's checkpoint carries the OmegaConf config like a Lightning one."""
    with pytest.raises(pickle.UnpicklingError):
        torch.load(FIXTURE / CHECKPOINT_FILE, weights_only=True)
    assert "lm.language_model.lm_head.weight" in read_state(FIXTURE / CHECKPOINT_FILE)
