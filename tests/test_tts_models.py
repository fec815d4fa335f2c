"""The models behind the tts service, in process: SoundStorm's checkpoint layout and decoding
(tests/test_soundstorm_golden.py compares it with the original),
the unit vocoder's prompts and chunk joins, the eSpeak and Piper backends' timings, effects
and the audio outlet."""

from __future__ import annotations

import itertools
import threading

import numpy as np
import pytest
import torch

from services.tts.backends.espeak import EspeakBackend
from services.tts.backends.piper import PiperBackend, _phonemes, _words
from services.tts.backends.soundstorm import (
    SoundStorm,
    SoundStormConfig,
    load_soundstorm,
    read_config,
    save_random_soundstorm,
)
from services.tts.backends.vocoder import SAMPLES_PER_UNIT, UnitVocoder
from services.tts.effects import apply_effect, shift_pitch
from services.tts.outlet import AudioOut
from services.tts.voices import VOICES
from solami import audio
from solami.errors import EngineUnavailable
from tests.support.tts_models import (
    SOUNDSTORM_CHECKPOINT,
    SPEECHTOKENIZER_CHECKPOINT,
    TINY_SOUNDSTORM,
)
from tests.support.tts_streams import median_pitch_hz

# Parameter names (and shapes, for the tiny config) of the SOLAMI/AnyGPT SoundStorm.
REFERENCE_KEYS = {
    "semantic_token_emb.weight": (1024, 32),
    "net.code_embeds.weight": (1025 * 7, 32),
    "net.conformer.layers.0.ff1.fn.fn.net.0.weight": (128, 32),
    "net.conformer.layers.0.ff1.fn.norm.weight": (32,),
    "net.conformer.layers.0.attn.fn.to_q.weight": (32, 32),
    "net.conformer.layers.0.attn.fn.to_kv.weight": (64, 32),
    "net.conformer.layers.0.attn.fn.to_out.bias": (32,),
    "net.conformer.layers.0.conv.net1.0.weight": (32,),
    "net.conformer.layers.0.conv.net1.2.weight": (128, 32, 1),
    "net.conformer.layers.0.conv.ds_conv.conv.weight": (64, 1, 5),
    "net.conformer.layers.0.conv.net2.1.gamma": (1, 64, 1),
    "net.conformer.layers.0.conv.net2.2.weight": (32, 64, 1),
    "net.conformer.layers.0.ff2.fn.fn.net.3.weight": (32, 128),
    "net.conformer.layers.0.post_norm.bias": (32,),
    "net.heads.0.weight": (7 * 32, 32),
    "net.to_logits.0.weight": (32,),
    "net.to_logits.2.weight": (7, 32, 1024),
    "net.to_logits.2.bias": (1, 1, 7, 1024),
}

# The same conv parameters in soundstorm-speechtokenizer's upstream layout.
UPSTREAM_CONV_NAMES = {
    "conv.net1.0.": "conv.net.0.",
    "conv.net1.2.": "conv.net.2.",
    "conv.ds_conv.": "conv.net.4.",
    "conv.net2.1.": "conv.net.6.",
    "conv.net2.2.": "conv.net.7.",
}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def soundstorm(model_dirs):
    return load_soundstorm(model_dirs[0], SOUNDSTORM_CHECKPOINT)


def test_soundstorm_has_the_reference_parameter_layout():
    state = SoundStorm(TINY_SOUNDSTORM).state_dict()
    assert {k: tuple(v.shape) for k, v in state.items() if k in REFERENCE_KEYS} == REFERENCE_KEYS
    assert len(state) == 8 + 29 * TINY_SOUNDSTORM.depth


def test_soundstorm_loader_is_strict_and_accepts_trainer_checkpoints(tmp_path, model_dirs):
    state = torch.load(model_dirs[0] / SOUNDSTORM_CHECKPOINT, weights_only=True)
    save_random_soundstorm(tmp_path, TINY_SOUNDSTORM, "a.pt")
    torch.save({"model": state}, tmp_path / "trainer.pt")
    assert isinstance(load_soundstorm(tmp_path, "trainer.pt"), SoundStorm)
    del state["net.heads.0.bias"]
    torch.save(state, tmp_path / "broken.pt")
    with pytest.raises(EngineUnavailable, match=r"missing \['net\.heads\.0\.bias'\]"):
        load_soundstorm(tmp_path, "broken.pt")
    with pytest.raises(EngineUnavailable, match="missing"):
        load_soundstorm(tmp_path, "absent.pt")
    assert read_config(tmp_path / "no-config") == SoundStormConfig()


def test_soundstorm_checkpoint_in_another_layout_fails_naming_keys(tmp_path, model_dirs):
    state = torch.load(model_dirs[0] / SOUNDSTORM_CHECKPOINT, weights_only=True)
    save_random_soundstorm(tmp_path, TINY_SOUNDSTORM, "a.pt")
    # soundstorm-speechtokenizer's own layout: one Sequential "conv.net" for the conv module.
    upstream = {}
    for key, value in state.items():
        for ours, theirs in UPSTREAM_CONV_NAMES.items():
            key = key.replace(ours, theirs)
        upstream[key] = value
    torch.save(upstream, tmp_path / "upstream.pt")
    with pytest.raises(EngineUnavailable, match=r"conv\.net1 / conv\.ds_conv / conv\.net2") as info:
        load_soundstorm(tmp_path, "upstream.pt")
    assert "net.conformer.layers.0.conv.net1.0.weight" in str(info.value)
    state["net.heads.0.bias"] = torch.zeros(3)
    torch.save(state, tmp_path / "resized.pt")
    with pytest.raises(EngineUnavailable, match=r"net\.heads\.0\.bias \(3,\) != \(224,\)"):
        load_soundstorm(tmp_path, "resized.pt")


def test_soundstorm_completes_all_layers_from_the_prompt(soundstorm):
    generator = torch.Generator().manual_seed(0)
    semantic = torch.randint(0, 1024, (1, 40), generator=generator)
    prompt = torch.randint(0, 1024, (1, 30, 8), generator=generator)
    codes = soundstorm.generate(semantic, prompt, steps=4)
    assert codes.shape == (1, 40, 8)
    assert torch.equal(codes[:, :, 0], semantic)
    assert int(codes.min()) >= 0 and int(codes.max()) < 1024
    # Sampling is seeded per call: the same call gives the same codes.
    assert torch.equal(codes, soundstorm.generate(semantic, prompt, steps=4))
    seeded = torch.Generator().manual_seed(0)
    assert torch.equal(codes, soundstorm.generate(semantic, prompt, 4, generator=seeded))
    assert soundstorm.generate(semantic, None, steps=1).shape == (1, 40, 8)
    # The prompt's tokens are never returned and it may be longer than the target.
    assert soundstorm.generate(semantic[:, :5], prompt, steps=2).shape == (1, 5, 8)


@pytest.mark.slow
def test_full_size_soundstorm_is_the_released_architecture():
    params = sum(p.numel() for p in SoundStorm(SoundStormConfig()).parameters())
    assert params == pytest.approx(351.4e6, rel=0.01)


def _vocoder(model_dirs, prompt_dir=None, context_units=25) -> UnitVocoder:
    vocoder = UnitVocoder(
        model_dirs[0],
        SOUNDSTORM_CHECKPOINT,
        model_dirs[1],
        SPEECHTOKENIZER_CHECKPOINT,
        prompt_dir,
        3.0,
        4,
        context_units,
    )
    vocoder.load()
    return vocoder


def _tone(seconds: float = 4.0, rate: int = 22_050) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * 180 * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))).astype(
        np.float32
    )


def test_voice_prompts_are_encoded_once_from_file_or_speech(model_dirs, tmp_path):
    (tmp_path / "Batman.wav").write_bytes(audio.encode_wav(_tone(), 22_050))
    vocoder = _vocoder(model_dirs, prompt_dir=tmp_path)
    spoken = []

    def speak(voice, character):
        spoken.append(character)
        return _tone(1.5), 22_050

    batman = vocoder.prompt("Batman", VOICES["deep"], speak)
    assert batman.shape == (1, 150, 8) and spoken == []
    samantha = vocoder.prompt("Samantha", VOICES["bright"], speak)
    assert samantha.shape == (1, 75, 8) and spoken == ["Samantha"]
    assert vocoder.prompt("Samantha", VOICES["bright"], speak) is samantha
    assert spoken == ["Samantha"]
    # Another voice for the same character (a request's voice override) is its own prompt;
    # a recorded prompt is the character's whatever the voice.
    assert vocoder.prompt("Samantha", VOICES["deep"], speak) is not samantha
    assert spoken == ["Samantha", "Samantha"]
    assert vocoder.prompt("Batman", VOICES["bright"], speak) is batman


def test_chunked_units_render_like_one_chunk(model_dirs):
    vocoder = _vocoder(model_dirs)
    prompt = vocoder.prompt("", VOICES["neutral"], lambda voice, character: (_tone(), 22_050))
    units = np.random.default_rng(1).integers(0, 1024, 100)
    session = vocoder.session(prompt)
    whole = np.concatenate([session.add(units), session.finish()])
    session = vocoder.session(prompt)
    parts = [session.add(units[i : i + n]) for i, n in ((0, 1), (1, 9), (10, 40), (50, 50))]
    chunked = np.concatenate([*parts, session.finish()])
    assert whole.size == chunked.size == 100 * SAMPLES_PER_UNIT
    assert np.corrcoef(whole, chunked)[0, 1] > 0.99


@pytest.fixture(scope="module")
def espeak():
    backend = EspeakBackend()
    backend.load()
    return backend


def test_espeak_timings_cover_the_audio(espeak):
    sentence = "Please remind me to call my mother tomorrow morning."
    rendered = next(iter(espeak.synthesize(sentence, VOICES["neutral"], "", threading.Event())))
    duration = rendered.samples.size / espeak.sample_rate_hz
    phonemes = rendered.phonemes
    assert phonemes[-1].end_s == pytest.approx(duration)
    assert all(a.end_s == pytest.approx(b.start_s) for a, b in itertools.pairwise(phonemes))
    assert [w.text for w in rendered.words][:3] == ["Please", "remind", "me"]
    assert all(w.start_s < w.end_s <= duration for w in rendered.words)


def test_espeak_voices_differ_in_pitch(espeak):
    sentence = "Hello there, how are you doing today?"
    pitch = {}
    for name in ("deep", "neutral", "bright"):
        rendered = next(iter(espeak.synthesize(sentence, VOICES[name], "", threading.Event())))
        pitch[name] = median_pitch_hz(rendered.samples, espeak.sample_rate_hz)
    assert pitch["deep"] < pitch["neutral"] < pitch["bright"]


def test_piper_alignment_gives_phonemes_over_the_whole_audio():
    backend = PiperBackend()
    backend.load()
    sentence = "Would you like me to show you a little dance?"
    for name in ("neutral", "bright", "deep"):
        voice = VOICES[name]
        rendered = next(iter(backend.synthesize(sentence, voice, "", threading.Event())))
        duration = rendered.samples.size / backend.sample_rate_hz
        assert rendered.phonemes[-1].end_s == pytest.approx(duration, abs=0.01)
        assert [w.text for w in rendered.words] == sentence.rstrip("?").split()
        sounds = [p.symbol for p in rendered.phonemes if p.symbol]
        assert "ʃˈoʊ" not in sounds and "ˈoʊ" in sounds and "d" in sounds


def test_piper_code_points_group_into_espeak_phonemes():
    symbols = [
        "^",
        "h",
        "ə",
        "l",
        "ˈ",
        "o",
        "ʊ",
        " ",
        "w",
        "ˈ",
        "ɜ",
        "ː",
        "l",
        "d",
        ",",
        " ",
        "t",
        "ʃ",
        "ˈ",
        "a",
        "ɪ",
        "n",
        "ə",
        "$",
    ]
    timed = [(s, i * 0.1, (i + 1) * 0.1) for i, s in enumerate(symbols)]
    phonemes = _phonemes(timed)
    assert [p.symbol for p in phonemes] == [
        "",
        "h",
        "ə",
        "l",
        "ˈoʊ",
        "w",
        "ˈɜː",
        "l",
        "d",
        "",
        "tʃ",
        "ˈaɪ",
        "n",
        "ə",
        "",
    ]
    assert phonemes[4].start_s == pytest.approx(0.4) and phonemes[4].end_s == pytest.approx(0.8)
    words = _words("Hello world, China.", timed)
    assert [(w.text, round(w.start_s, 1), round(w.end_s, 1)) for w in words] == [
        ("Hello", 0.1, 0.7),
        ("world", 0.8, 1.4),
        ("China", 1.6, 2.3),
    ]
    spread = _words("Hello big world, China.", timed)
    assert [w.text for w in spread] == ["Hello", "big", "world", "China"]
    assert spread[0].start_s == pytest.approx(0.1) and spread[-1].end_s == pytest.approx(2.3)


def test_pitch_shift_keeps_duration_when_rendered_slower():
    tone = _tone(2.0)
    shifted = shift_pitch(tone, 22_050, 1.25)
    assert shifted.size == pytest.approx(tone.size / 1.25, abs=2)
    assert median_pitch_hz(shifted, 22_050) == pytest.approx(1.25 * 180, rel=0.05)


def test_robot_effect_is_continuous_across_pieces():
    tone = _tone(1.0)
    whole = apply_effect("robot", tone, 22_050, 0)
    pieces = np.concatenate(
        [
            apply_effect("robot", tone[:7_000], 22_050, 0),
            apply_effect("robot", tone[7_000:], 22_050, 7_000),
        ]
    )
    np.testing.assert_allclose(whole, pieces, atol=1e-6)


@pytest.mark.parametrize("output_rate", [22_050, 16_000, 48_000])
def test_audio_outlet_is_contiguous_across_pieces(output_rate):
    tone = _tone(1.0)
    out = AudioOut(22_050, output_rate, start_s=0.5, chunk_ms=100)
    events = [e for piece in np.array_split(tone, 7) for e in out.add(piece)]
    tail, end = out.finish()
    events += tail
    position = round(0.5 * output_rate)
    for event in events:
        assert event.start_sample == position
        assert event.samples.size <= output_rate // 10
        position += event.samples.size
    assert end.total_samples == position - round(0.5 * output_rate)
    assert end.total_samples == pytest.approx(output_rate, abs=2)
    joined = np.concatenate([e.samples for e in events])
    reference = audio.resample(tone, 22_050, output_rate)
    assert np.max(np.abs(joined[: reference.size] - reference)) < 0.01
