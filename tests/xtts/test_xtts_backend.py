"""The XTTS-v2 backend for real: coqui-tts's model and checkpoint loader on a tiny XTTS-v2 with
random weights in the released layout, voice cloning from a reference clip and built-in
speakers, streamed in chunks. coqui-tts needs torchaudio (the GPU image has it); elsewhere
this module is skipped. Runs on CUDA where there is one."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("TTS", reason="coqui-tts is installed only in the GPU image")

import torch

from services.tts.backends.espeak import EspeakBackend
from services.tts.backends.xtts import STREAM_CHUNK_TOKENS, XttsBackend
from services.tts.voices import VOICES
from solami import audio
from solami.errors import EngineUnavailable
from tests.support.xtts_models import GENERATED_TOKENS, save_tiny_xtts

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
TEXT = "Hello there, how are you today?"
# The HiFi-GAN decoder renders 1024 samples at 22.05 kHz per audio token, output at 24 kHz.
SECONDS_PER_TOKEN = 1024 / 22_050


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save_tiny_xtts(tmp_path_factory.mktemp("xtts") / "model")


@pytest.fixture(scope="module")
def prompt_dir(tmp_path_factory):
    """Samantha's reference clip: three seconds of real (eSpeak NG) speech at 44.1 kHz."""
    espeak = EspeakBackend()
    espeak.load()
    pieces = espeak.synthesize(
        "I am Samantha, and this is how my voice sounds.",
        VOICES["bright"],
        "Samantha",
        threading.Event(),
    )
    samples = np.concatenate([piece.samples for piece in pieces])
    directory = tmp_path_factory.mktemp("prompts")
    clip = audio.resample(samples, espeak.sample_rate_hz, 44_100)
    (directory / "Samantha.wav").write_bytes(audio.encode_wav(clip, 44_100))
    return directory


@pytest.fixture(scope="module")
def backend(model_dir, prompt_dir):
    loaded = XttsBackend(model_dir, prompt_dir, DEVICE)
    loaded.load()
    return loaded


def _speak(backend: XttsBackend, character: str, voice: str, cancel=None):
    return list(backend.synthesize(TEXT, VOICES[voice], character, cancel or threading.Event()))


def test_loads_the_released_layout_through_the_real_loader(backend):
    assert backend.sample_rate_hz == 24_000
    assert next(backend._model.parameters()).device.type == DEVICE


def test_a_cloned_voice_streams_in_chunks_with_timings(backend):
    pieces = _speak(backend, "Samantha", "neutral")
    chunks, timings = pieces[:-1], pieces[-1]
    # One chunk per STREAM_CHUNK_TOKENS tokens, then the final flush (the cross-faded tail).
    assert len(chunks) == GENERATED_TOKENS // STREAM_CHUNK_TOKENS + 1
    samples = np.concatenate([chunk.samples for chunk in chunks])
    assert samples.dtype == np.float32 and np.isfinite(samples).all()
    duration_s = samples.size / backend.sample_rate_hz
    assert duration_s == pytest.approx(GENERATED_TOKENS * SECONDS_PER_TOKEN, rel=0.1)
    assert not timings.samples.size and timings.words
    assert [w.text for w in timings.words] == ["Hello", "there", "how", "are", "you", "today"]
    assert timings.words[-1].end_s <= duration_s + 1e-3


def test_voice_prompts_are_encoded_once(backend, monkeypatch):
    calls = []
    encode = backend._clip_latents
    monkeypatch.setattr(backend, "_clip_latents", lambda clip: calls.append(clip) or encode(clip))
    backend._latents.pop("Samantha", None)
    _speak(backend, "Samantha", "neutral")
    _speak(backend, "Samantha", "neutral")
    assert len(calls) == 1


def test_a_character_without_a_clip_uses_a_built_in_speaker(backend):
    pieces = _speak(backend, "Batman", "deep")  # deep -> "Damien Black"
    assert sum(piece.samples.size for piece in pieces) > 0
    with pytest.raises(EngineUnavailable, match=r"add Trump\.wav to the voice prompt directory"):
        _speak(backend, "Trump", "broad")  # "Craig Gutsy" is not in this model's speakers


def test_a_faster_voice_is_shorter(backend):
    normal = sum(p.samples.size for p in _speak(backend, "Samantha", "neutral"))
    fast = sum(p.samples.size for p in _speak(backend, "Samantha", "bright"))
    assert fast < normal * (1 / VOICES["bright"].rate + 0.03)


def test_cancel_stops_the_stream(backend):
    cancel = threading.Event()
    produced = 0
    for _piece in backend.synthesize(TEXT, VOICES["neutral"], "Samantha", cancel):
        produced += 1
        cancel.set()
    assert produced == 1


def _model_copy(model_dir: Path, directory: Path, edit) -> Path:
    """A copy of the model directory whose ``model.pth`` state dict went through ``edit``."""
    directory.mkdir()
    for name in ("config.json", "vocab.json", "speakers_xtts.pth"):
        (directory / name).write_bytes((model_dir / name).read_bytes())
    state = torch.load(model_dir / "model.pth", weights_only=True)["model"]
    torch.save({"model": edit(state)}, directory / "model.pth")
    return directory


def test_a_broken_checkpoint_is_refused(model_dir, tmp_path):
    def drop_a_decoder_weight(state: dict) -> dict:
        state.pop(next(key for key in state if key.startswith("hifigan_decoder.")))
        return state

    broken = _model_copy(model_dir, tmp_path / "broken", drop_a_decoder_weight)
    with pytest.raises(RuntimeError, match="Missing key"):
        XttsBackend(broken, None, DEVICE).load()


def test_trainer_checkpoints_load_too(model_dir, tmp_path):
    """coqui's trainer saves the model under ``xtts.``; the loader strips it."""
    renamed = _model_copy(
        model_dir, tmp_path / "trainer", lambda state: {f"xtts.{k}": v for k, v in state.items()}
    )
    loaded = XttsBackend(renamed, None, DEVICE)
    loaded.load()
    assert sum(p.samples.size for p in _speak(loaded, "Batman", "deep")) > 0
