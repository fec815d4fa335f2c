"""Motion tokenizers built tiny with random weights, saved in the original layout and loaded
through the real loader; streaming decode; training on the motion library."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from services.motion import features
from services.motion.backends.checkpoints import (
    BODY_FILE,
    STATS_FILE,
    Stats,
    load_tokenizers,
    read_stats,
    write_stats,
)
from services.motion.backends.codec import MotionCodec
from services.motion.backends.vqvae import BODY, HAND, VQVae
from services.motion.library import MotionLibrary
from services.motion.skeleton import BUILT_IN
from services.motion.train import TrainOptions, load_clips, train
from services.motion.train import main as train_main
from solami.avatar.features import FEATURE_DIMS
from solami.avatar.rates import FPS
from solami.errors import EngineUnavailable
from tests.support.motion_models import (
    TINY_BODY,
    TINY_HAND,
    relay_user_and_character,
    smplx_ai,
    write_tiny_checkpoint,
)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return write_tiny_checkpoint(tmp_path_factory.mktemp("motion-checkpoint"))


@pytest.fixture(scope="module")
def codec(checkpoint):
    return MotionCodec(load_tokenizers(checkpoint), BUILT_IN)


def test_loader_reads_the_architecture_and_weights_back(checkpoint):
    tokenizers = load_tokenizers(checkpoint)
    assert tokenizers.body.config == TINY_BODY
    assert tokenizers.hand.config == TINY_HAND
    assert tokenizers.transform.config.code_num == 256
    saved = torch.load(checkpoint / BODY_FILE, weights_only=True)
    for name, tensor in tokenizers.body.state_dict().items():
        assert torch.equal(tensor, saved[name])
    assert "quantizer.codebook" in saved and "encoder.model.2.1.model.0.conv1.weight" in saved


def test_original_statistics_layout_round_trips(tmp_path, checkpoint):
    stats = read_stats(checkpoint / STATS_FILE)
    with np.load(checkpoint / STATS_FILE, allow_pickle=True) as data:
        assert set(data.files) == {"smplx_feature", "transforms"}
        assert data["smplx_feature"].item()["cont6d_local"]["mean"].shape == (51, 6)
    flat = tmp_path / "flat.npz"
    np.savez(flat, **dataclasses.asdict(stats))
    again = read_stats(flat)
    assert np.allclose(again.motion_std, stats.motion_std)
    zero = dataclasses.replace(Stats.identity(), transform_std=np.zeros(5))
    write_stats(tmp_path / "zero.npz", zero)
    assert (read_stats(tmp_path / "zero.npz").transform_std > 0).all()


def test_broken_checkpoints_are_reported(tmp_path, checkpoint):
    with pytest.raises(EngineUnavailable, match="not found"):
        load_tokenizers(tmp_path)
    for name in ("body.pth", "hand.pth", "transform.pth", STATS_FILE):
        (tmp_path / name).write_bytes((checkpoint / name).read_bytes())
    hand = torch.load(checkpoint / "hand.pth", weights_only=True)
    torch.save(hand, tmp_path / "body.pth")
    with pytest.raises(EngineUnavailable, match="expected 135/180"):
        load_tokenizers(tmp_path)


def test_full_size_architecture_matches_the_original_parameter_layout():
    body = VQVae(BODY)
    state = body.state_dict()
    assert state["encoder.model.0.weight"].shape == (512, 135, 3)
    assert state["quantizer.codebook"].shape == (512, 512)
    assert state["decoder.model.6.weight"].shape == (135, 512, 3)
    assert len(state) == 67
    assert VQVae(HAND).state_dict()["encoder.model.0.weight"].shape == (512, 180, 3)


def test_decode_gives_four_frames_per_token_and_batches(codec):
    rng = np.random.default_rng(0)
    body = rng.integers(0, 512, (3, 10))
    hand = rng.integers(0, 512, (3, 10))
    batch = codec.decode_features(body, hand)
    assert batch.shape == (3, 40, FEATURE_DIMS)
    for row in range(3):
        single = codec.decode_features(body[row : row + 1], hand[row : row + 1])[0]
        assert np.allclose(batch[row], single, atol=1e-5)
    motion = codec.decode(body[0], hand[0])
    assert motion.poses.shape == (40, 165) and motion.trans.shape == (40, 3)
    assert np.allclose(motion.trans[0, [0, 2]], 0.0)
    ids = codec.encode_features(batch)
    assert ids[0].shape == (3, 10) and ids[1].shape == (3, 10)


def test_encode_user_motion_gives_ids_in_range(codec):
    clip = smplx_ai()
    tokens = codec.encode_user(clip)
    assert len(tokens.body_ids) == len(tokens.hand_ids) == -(-(clip.n_frames - 1) // 4)
    assert tokens.body_ids.min() >= 0 and tokens.body_ids.max() < 512
    assert len(set(tokens.body_ids.tolist())) > 1
    assert 0 <= tokens.trans_id < 256
    user, character = (features.convert_up_axis(m) for m in relay_user_and_character())
    short = codec.encode_user(user, character)
    assert len(short.body_ids) == 7  # 27 frames -> 26 feature frames -> 7 ids (padded)


def test_streamed_decode_equals_one_shot_for_any_chunking(codec):
    rng = np.random.default_rng(1)
    body, hand = rng.integers(0, 512, 41), rng.integers(0, 512, 41)
    whole = codec.decode(body, hand)
    for chunk in (1, 3, 16, 41):
        stream = codec.stream()
        parts = []
        for start in range(0, 41, chunk):
            piece = stream.push(body[start : start + chunk].tolist(), [])
            assert piece is None  # no hand ids yet: nothing is decodable
            piece = stream.push([], hand[start : start + chunk].tolist())
            if piece is not None:
                assert piece.n_frames % 4 == 0
                parts.append(piece)
        parts.append(stream.finish())
        poses = np.concatenate([p.poses for p in parts])
        trans = np.concatenate([p.trans for p in parts])
        assert poses.shape == whole.poses.shape
        assert (
            features.rotations.geodesic_angle(
                features.Motion(poses, trans).rotations(), whole.rotations()
            ).max()
            < 1e-4
        )
        assert np.abs(trans - whole.trans).max() < 1e-4
    # Without the context, chunk borders would not match: decoding halves alone differs.
    halves = [codec.decode(body[s], hand[s]) for s in (slice(0, 20), slice(20, 41))]
    assert np.abs(np.concatenate([h.poses for h in halves]) - whole.poses).max() > 1e-3


def test_training_loss_goes_down_and_resumes(tmp_path):
    data = tmp_path / "clips"
    MotionLibrary.load().export(data)
    options = TrainOptions(
        data_dir=data,
        out_dir=tmp_path / "out",
        steps=50,
        batch_size=16,
        window_frames=32,
        learning_rate=1e-3,
        save_every=25,
        body=TINY_BODY,
        hand=TINY_HAND,
        transform_samples=128,
        eval_clips=3,
        progress=False,
    )
    result = train(options)
    losses = np.array(result.losses)
    assert len(losses) == 50
    assert losses[-10:].mean() < 0.85 * losses[:10].mean()
    assert np.isfinite(result.mpjpe_mm) and result.mpjpe_mm > 0
    tokenizers = load_tokenizers(tmp_path / "out")
    assert tokenizers.body.config == TINY_BODY
    resumed = train(dataclasses.replace(options, steps=60, resume=True))
    assert resumed.steps == 60 and len(resumed.losses) == 10


def test_clips_at_other_frame_rates_are_resampled_to_30_fps(tmp_path):
    wave = MotionLibrary.load().clips["wave"].motion
    fast = features.resample(wave, FPS, 120)  # as an AMASS capture would be
    assert fast.n_frames == (wave.n_frames - 1) * 4 + 1
    np.savez(tmp_path / "amass.npz", poses=fast.poses, trans=fast.trans, mocap_frame_rate=120.0)
    np.savez(tmp_path / "native.npz", poses=wave.poses, trans=wave.trans)
    np.savez(tmp_path / "broken.npz", poses=wave.poses, trans=wave.trans, fps=0.0)
    amass, native = load_clips(tmp_path, z_up=False, min_frames=2)
    for clip in (amass, native):
        assert clip.n_frames == wave.n_frames
        angle = features.rotations.geodesic_angle(clip.rotations(), wave.rotations())
        assert angle.max() < 1e-6
        assert np.abs(clip.trans - wave.trans).max() < 1e-9


def test_motion_train_command_prints_its_summary(tmp_path, capsys):
    data = tmp_path / "clips"
    MotionLibrary.load().export(data)
    code = train_main(
        [
            str(data),
            "--out",
            str(tmp_path / "out"),
            "--steps",
            "3",
            "--batch-size",
            "4",
            "--window",
            "16",
            "--width",
            "16",
            "--code-dim",
            "16",
            "--depth",
            "1",
            "--save-every",
            "3",
        ]
    )
    assert code == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["steps"] == 3 and summary["mpjpe_mm"] > 0
    assert (tmp_path / "out" / "body.pth").is_file()
    assert train_main([str(tmp_path / "empty"), "--out", str(tmp_path / "x")]) == 2
