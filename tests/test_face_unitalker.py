"""UniTalker: the real architecture built tiny with random weights, saved in the released
checkpoint layout and loaded through the real loader; windowed and streamed inference."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from services.face.backends.base import frame_count
from services.face.backends.unitalker import (
    encoder_config,
    load_unitalker,
    read_state_dict,
    save_random_unitalker,
)
from services.face.backends.unitalker_model import ETF_BLENDSHAPES, ETF_TO_CHANNEL
from services.face.backends.wav2vec import (
    WAV2VEC2_LARGE_XLSR,
    WAVLM_BASE_PLUS,
    EncoderConfig,
    SpeechEncoder,
)
from services.face.engine import FaceEngine
from services.face.settings import FaceSettings
from solami import audio
from solami.avatar.face import ARKIT_BLENDSHAPES, CHANNELS, lower_camel
from solami.errors import EngineUnavailable
from tests.support.speech import ESPEAK_RATE_HZ, espeak

TINY_WAVLM = EncoderConfig(
    hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64, conv_dim=(16,) * 7,
    pos_conv_kernel=8, pos_conv_groups=4, num_buckets=16,
)  # fmt: skip
TINY_WAV2VEC2 = dataclasses.replace(
    WAV2VEC2_LARGE_XLSR, hidden_size=64, num_layers=2, num_heads=1, intermediate_size=96,
    conv_dim=(16,) * 7, pos_conv_kernel=8, pos_conv_groups=4,
)  # fmt: skip


def _engine(weights, **overrides) -> FaceEngine:
    settings = dataclasses.replace(
        FaceSettings(), backend="unitalker", unitalker_weights=weights, **overrides
    )
    engine = FaceEngine(settings)
    engine.load()
    return engine


@pytest.mark.parametrize("config", [TINY_WAVLM, TINY_WAV2VEC2], ids=["wavlm", "wav2vec2"])
def test_checkpoint_round_trip_through_the_loader(tmp_path, config):
    path = tmp_path / "unitalker.pt"
    saved = save_random_unitalker(path, config, decoder_dim=24, identities=5)
    assert encoder_config(read_state_dict(path)) == config
    model = load_unitalker(path)
    loaded = model.state_dict()
    assert set(loaded) == set(saved)
    assert all(torch.equal(loaded[k], saved[k]) for k in saved)
    assert model.decoder.learnable_style_emb.num_embeddings == 5
    audio = torch.randn(1, 16_000, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        out = model(audio, torch.tensor([4]), 30)
    assert out.shape == (1, 30, 52) and torch.isfinite(out).all()


def test_released_layout_variants_load(tmp_path):
    path = tmp_path / "unitalker.pt"
    saved = save_random_unitalker(path, TINY_WAVLM, decoder_dim=24, identities=3)
    legacy = {}
    for name, tensor in saved.items():
        name = name.replace("parametrizations.weight.original0", "weight_g")
        legacy["module." + name.replace("parametrizations.weight.original1", "weight_v")] = tensor
    legacy["module.audio_encoder.masked_spec_embed"] = torch.rand(32)
    legacy["module.out_head_dict.FLAME_5023_vertices.weight"] = torch.zeros(15069, 24)
    wrapped = tmp_path / "wrapped.pt"
    torch.save({"state_dict": legacy, "epoch": 7}, wrapped)
    loaded = load_unitalker(wrapped).state_dict()
    assert all(torch.equal(loaded[k], saved[k]) for k in saved)


def test_bad_checkpoints_are_refused_with_the_reason(tmp_path):
    with pytest.raises(EngineUnavailable, match="not found"):
        load_unitalker(tmp_path / "missing.pt")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(EngineUnavailable, match="cannot read"):
        load_unitalker(garbage)
    path = tmp_path / "unitalker.pt"
    saved = save_random_unitalker(path, TINY_WAVLM, decoder_dim=24, identities=3)
    no_head = {k: v for k, v in saved.items() if not k.startswith("out_head_dict.")}
    no_head["out_head_dict.inhouse_blendshape_weight.weight"] = torch.zeros(51, 24)
    torch.save(no_head, path)
    with pytest.raises(EngineUnavailable, match="no 3DETF_blendshape_weight head"):
        load_unitalker(path)
    partial = dict(saved)
    del partial["audio_encoder.encoder.layers.1.final_layer_norm.weight"]
    torch.save(partial, path)
    with pytest.raises(EngineUnavailable, match="lacks 1 tensors"):
        load_unitalker(path)
    save_random_unitalker(path, TINY_WAVLM, decoder_dim=24, identities=3)
    with pytest.raises(EngineUnavailable, match="outside the checkpoint's 3 styles"):
        _engine(path, unitalker_style=3)


def test_output_order_is_mapped_into_the_livelinkface_channels():
    assert sorted(ETF_BLENDSHAPES) == list(ETF_BLENDSHAPES)
    assert {name[0].upper() + name[1:] for name in ETF_BLENDSHAPES} == set(ARKIT_BLENDSHAPES)
    assert ETF_BLENDSHAPES[8] == "eyeBlinkLeft" and ETF_BLENDSHAPES[24] == "jawOpen"
    for position, column in enumerate(ETF_TO_CHANNEL):
        assert lower_camel(CHANNELS[column]) == ETF_BLENDSHAPES[position]


def test_long_audio_in_cross_faded_windows_streams_like_the_whole_clip(tmp_path):
    path = tmp_path / "unitalker.pt"
    save_random_unitalker(path, TINY_WAVLM, decoder_dim=24, identities=3)
    engine = _engine(path, unitalker_window_s=2.0, unitalker_overlap_s=0.5)
    speech = espeak("Hello there, how are you doing today? I am fine.")
    clip = np.concatenate([speech, speech[: ESPEAK_RATE_HZ // 3]])
    whole = engine.animate(clip, ESPEAK_RATE_HZ)
    assert whole.shape == (frame_count(len(clip), ESPEAK_RATE_HZ), 61)
    assert np.all((whole >= 0) & (whole <= 1))
    assert np.all(whole[:, 52:] == 0)
    stream = engine.open(ESPEAK_RATE_HZ)
    parts = [stream.push(clip[i : i + 2_999]) for i in range(0, len(clip), 2_999)]
    early = sum(len(p) for p in parts)
    parts.append(stream.finish())
    assert early > 0, "frames of completed windows leave before the end"
    np.testing.assert_array_equal(np.concatenate(parts), whole)
    # Window 0 covers frames 0-59 alone up to frame 45, where window 1 fades in.
    backend = engine.backends["unitalker"]
    segment = clip[: round(60 * ESPEAK_RATE_HZ / 30)]
    first = backend.infer(audio.resample(segment, ESPEAK_RATE_HZ, 16_000), 60)
    np.testing.assert_allclose(whole[:46], first[:46], atol=1e-6)
    assert not np.allclose(whole[46:60], first[46:60], atol=1e-4)


@pytest.mark.slow
def test_full_size_unitalker_b_architecture(tmp_path):
    assert sum(p.numel() for p in SpeechEncoder(WAVLM_BASE_PLUS).parameters()) == 94_381_168
    path = tmp_path / "unitalker-b.pt"
    save_random_unitalker(path, WAVLM_BASE_PLUS, decoder_dim=256, identities=8)
    engine = _engine(path)
    frames = engine.animate(np.zeros(2 * 16_000, np.float32), 16_000)
    assert frames.shape == (60, 61)
