"""The motion tokenizers against the original code: tiny checkpoints written by SOLAMI's own
``VQVae``/``VQVAE_Trans`` (``tests/fixtures/motion_vqvae``, see its README) load strictly through
our loader and give the original's code indices exactly and its decoded features to 1e-5."""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from services.motion.backends.checkpoints import (
    BODY_FILE,
    HAND_FILE,
    STATS_FILE,
    TRANSFORM_FILE,
    Stats,
    load_tokenizers,
    write_stats,
)
from services.motion.backends.codec import MotionCodec
from services.motion.backends.vqvae import TransformConfig, VQConfig, VQVae
from services.motion.skeleton import BUILT_IN
from solami.avatar.features import BODY_FEATURE_DIMS
from solami.errors import EngineUnavailable

FIXTURE = Path(__file__).parent / "fixtures" / "motion_vqvae"
SHA256 = {
    BODY_FILE: "19722000712de3a4336e21431a9e4254a40485e2d3929f0d36e4a9042365331f",
    HAND_FILE: "19c03d8254bef479ec2feeab339044f8aa1a42e15541d527a7de403c877651dc",
    TRANSFORM_FILE: "4492ef50d5e5673f6b918dab21439cee3a9ec8d51c9c57c939a94fb0d6dc3f98",
    "golden.npz": "7867a1f01924ddca34a9791ac00ee749ec8ff7e6aa1c0d7bae57fb9c394881c0",
}
# The constructor arguments the fixture was made with (its README).
ORIGINAL_BODY = VQConfig(
    nfeats=135, code_num=32, code_dim=6, output_emb_width=6, down_t=2, width=12, depth=3
)
ORIGINAL_HAND = VQConfig(
    nfeats=180, code_num=32, code_dim=6, output_emb_width=6, down_t=2, width=12, depth=2
)
ORIGINAL_TRANSFORM = TransformConfig(nfeats=5, code_num=16, code_dim=4)
# Decoded features: bitwise equal on this machine; the tolerance allows other CPUs' kernels.
DECODE_ATOL = 1e-5


@pytest.fixture(scope="module")
def golden() -> dict[str, np.ndarray]:
    with np.load(FIXTURE / "golden.npz") as data:
        return {name: data[name] for name in data.files}


def copy_checkpoint(directory: Path) -> Path:
    """The fixture's three files plus identity statistics: a checkpoint directory."""
    directory.mkdir(parents=True, exist_ok=True)
    for name in (BODY_FILE, HAND_FILE, TRANSFORM_FILE):
        shutil.copyfile(FIXTURE / name, directory / name)
    write_stats(directory / STATS_FILE, Stats.identity())
    return directory


@pytest.fixture(scope="module")
def tokenizers(tmp_path_factory):
    return load_tokenizers(copy_checkpoint(tmp_path_factory.mktemp("golden")))


def test_the_fixture_is_the_recorded_one():
    for name, digest in SHA256.items():
        assert hashlib.sha256((FIXTURE / name).read_bytes()).hexdigest() == digest, name


def test_the_original_files_load_strictly_with_their_architecture(tokenizers):
    assert tokenizers.body.config == ORIGINAL_BODY
    assert tokenizers.hand.config == ORIGINAL_HAND
    assert tokenizers.transform.config == ORIGINAL_TRANSFORM
    for model, name in (
        (tokenizers.body, BODY_FILE),
        (tokenizers.hand, HAND_FILE),
        (tokenizers.transform, TRANSFORM_FILE),
    ):
        saved = torch.load(FIXTURE / name, weights_only=True)
        # What the original writes: a plain state dict, no prefix, in module order.
        assert isinstance(saved, collections.OrderedDict)
        assert list(saved) == list(model.state_dict())
        for key, tensor in model.state_dict().items():
            assert torch.equal(tensor, saved[key]), key


def test_codes_equal_the_originals(tokenizers, golden):
    feats = torch.as_tensor(golden["features"])
    body = tokenizers.body.encode(feats[..., :BODY_FEATURE_DIMS]).numpy()
    hand = tokenizers.hand.encode(feats[..., BODY_FEATURE_DIMS:]).numpy()
    np.testing.assert_array_equal(body, golden["body_ids"])
    np.testing.assert_array_equal(hand, golden["hand_ids"])
    transform = tokenizers.transform.encode(torch.as_tensor(golden["transform_input"])).numpy()
    np.testing.assert_array_equal(transform, golden["transform_ids"][:, 0])
    # A varied sequence, so that equal ids say something.
    assert len(set(body[0].tolist())) > 4 and len(set(transform.tolist())) > 4


def test_decoded_features_equal_the_originals(tokenizers, golden):
    body = tokenizers.body.decode(torch.as_tensor(golden["body_ids"])).numpy()
    hand = tokenizers.hand.decode(torch.as_tensor(golden["hand_ids"])).numpy()
    np.testing.assert_allclose(body, golden["body_decoded"], rtol=0, atol=DECODE_ATOL)
    np.testing.assert_allclose(hand, golden["hand_decoded"], rtol=0, atol=DECODE_ATOL)
    transform = tokenizers.transform.decode(torch.as_tensor(golden["transform_ids"][:, 0]))
    np.testing.assert_allclose(
        transform.numpy(), golden["transform_decoded"], rtol=0, atol=DECODE_ATOL
    )


def test_the_codec_reproduces_the_original_in_batches(tokenizers, golden):
    codec = MotionCodec(tokenizers, BUILT_IN)
    batch = np.concatenate([golden["features"]] * 2).astype(np.float64)
    body, hand = codec.encode_features(batch)
    for ids, name in ((body, "body_ids"), (hand, "hand_ids")):
        np.testing.assert_array_equal(ids, np.repeat(golden[name], 2, axis=0))
    decoded = codec.decode_features(body, hand)
    expected = np.concatenate([golden["body_decoded"], golden["hand_decoded"]], axis=-1)
    for row in decoded:
        np.testing.assert_allclose(row, expected[0], rtol=0, atol=DECODE_ATOL)


def _with_body(directory: Path, state: object) -> Path:
    torch.save(state, directory / BODY_FILE)
    return directory


def _body_state() -> collections.OrderedDict:
    return torch.load(FIXTURE / BODY_FILE, weights_only=True)


def _missing(state):
    del state["decoder.model.2.0.model.1.conv2.bias"]
    return state


def _norm_layers(state):
    # A model trained with norm="LN" has norm weights the original serving config lacks.
    state["encoder.model.2.1.model.0.norm1.weight"] = torch.ones(12)
    return state


def _prefixed(state):
    return {"state_dict": {f"vae_body.{k}": v for k, v in state.items()}}


def _misshapen(state):
    state["decoder.model.0.weight"] = torch.zeros(12, 7, 3)
    return state


@pytest.mark.parametrize(
    ("corrupt", "named"),
    [
        (_missing, "missing decoder.model.2.0.model.1.conv2.bias"),
        (_norm_layers, "unexpected encoder.model.2.1.model.0.norm1.weight"),
        (_prefixed, "unexpected vae_body.encoder.model.0.weight.*prefix 'vae_body.'"),
        (_misshapen, r"misshapen decoder.model.0.weight \(12, 7, 3\) \(expected \(12, 6, 3\)\)"),
    ],
)
def test_a_wrong_layout_names_the_first_bad_keys_and_the_layout_expected(tmp_path, corrupt, named):
    directory = _with_body(copy_checkpoint(tmp_path), corrupt(_body_state()))
    with pytest.raises(EngineUnavailable) as info:
        load_tokenizers(directory)
    message = str(info.value)
    assert "body.pth" in message
    assert re.search(named, message), message
    assert "torch.save(model.vae_body.state_dict(), 'body.pth')" in message


def test_a_different_time_reduction_is_refused(tmp_path):
    # MotionGPT's VQVae defaults to down_t=3 (8 frames per id); SOLAMI's configs set 2.
    deeper = VQVae(dataclasses.replace(ORIGINAL_BODY, down_t=3, depth=1))
    directory = _with_body(copy_checkpoint(tmp_path), deeper.state_dict())
    with pytest.raises(EngineUnavailable, match="8 frames per token"):
        load_tokenizers(directory)


def test_an_unreadable_file_is_refused(tmp_path):
    directory = copy_checkpoint(tmp_path)
    (directory / TRANSFORM_FILE).write_bytes(b"not a checkpoint")
    with pytest.raises(EngineUnavailable, match=r"transform\.pth: not a plain torch state dict"):
        load_tokenizers(directory)
