"""Vocode voice prompts from recorded clips: the layouts found, WAV/MP3/FLAC read through
libsndfile at 16 kHz, one clip per session picked from its id, the cap on length, one encoding
per clip, and bad clips refused when the service starts."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import soundfile as sf

from services.tts.backends.espeak import EspeakBackend
from services.tts.backends.vocoder import SAMPLE_RATE_HZ, UnitVocoder
from services.tts.engine import TtsEngine
from services.tts.server import DEFINITION
from services.tts.settings import TtsSettings
from services.tts.voices import (
    MAX_PROMPT_S,
    MIN_PROMPT_S,
    VOICES,
    choose_prompt,
    load_prompts,
    prompt_files,
    read_prompt,
)
from solami.client import sync_channel
from solami.errors import EngineUnavailable
from solami.settings import SettingsError, load_settings
from solami.v1 import common_pb2, tts_pb2, tts_pb2_grpc
from tests.support.servers import InProcessServer
from tests.support.tts_models import (
    SOUNDSTORM_CHECKPOINT,
    SPEECHTOKENIZER_CHECKPOINT,
    write_prompt_clip,
)

FRAMES_PER_S = 50
SESSIONS = [f"session-{i}" for i in range(40)]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _vocoder(model_dirs, prompt_dir, prompt_s: float = MAX_PROMPT_S) -> UnitVocoder:
    return UnitVocoder(
        model_dirs[0],
        SOUNDSTORM_CHECKPOINT,
        model_dirs[1],
        SPEECHTOKENIZER_CHECKPOINT,
        prompt_dir,
        prompt_s,
        4,
        25,
    )


def _never_speak(voice, character):
    raise AssertionError(f"{character} has recorded clips: nothing is spoken")


def test_clips_are_found_in_every_layout(tmp_path):
    for name in (
        "Batman/b.mp3",
        "Batman/a.wav",
        "Batman/notes.txt",
        "Batman/.hidden.wav",
        "Batman.flac",
        "batman_0.mp3",
        "BATMAN_12.WAV",
        "Batman-old.wav",
        "Batmanx_0.wav",
        "Samantha_0.wav",
    ):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    found = [p.relative_to(tmp_path).as_posix() for p in prompt_files(tmp_path, "Batman")]
    assert found == ["BATMAN_12.WAV", "Batman/a.wav", "Batman/b.mp3", "Batman.flac", "batman_0.mp3"]
    assert [p.name for p in prompt_files(tmp_path, "Samantha")] == ["Samantha_0.wav"]
    assert prompt_files(tmp_path, "Link") == []


@pytest.mark.parametrize("extension", ["wav", "mp3", "flac"])
def test_clips_are_read_whole_at_16_khz(tmp_path, extension):
    path = write_prompt_clip(tmp_path / f"Link_0.{extension}", 2.5, rate_hz=22_050)
    clip = read_prompt(path, SAMPLE_RATE_HZ)
    assert clip.path == path and clip.samples.dtype == np.float32
    assert clip.samples.size / SAMPLE_RATE_HZ == pytest.approx(2.5, abs=0.06)
    assert np.abs(clip.samples).max() == pytest.approx(0.45, abs=0.05)


def test_stereo_clips_are_mixed_to_mono(tmp_path):
    t = np.arange(2 * 44_100) / 44_100
    left = 0.4 * np.sin(2 * np.pi * 200 * t)
    sf.write(tmp_path / "User_0.wav", np.stack([left, -0.5 * left], axis=1), 44_100)
    clip = read_prompt(tmp_path / "User_0.wav", SAMPLE_RATE_HZ)
    assert clip.samples.size == 2 * SAMPLE_RATE_HZ
    assert np.abs(clip.samples).max() == pytest.approx(0.1, abs=0.01)


def test_long_clips_are_cut_at_the_cap(tmp_path, model_dirs):
    write_prompt_clip(tmp_path / "Trump" / "long.flac", MAX_PROMPT_S + 5, rate_hz=16_000)
    assert load_prompts(tmp_path, SAMPLE_RATE_HZ)["Trump"][0].samples.size == (
        MAX_PROMPT_S * SAMPLE_RATE_HZ
    )
    vocoder = _vocoder(model_dirs, tmp_path)
    vocoder.load()
    tokens = vocoder.prompt("Trump", VOICES["broad"], _never_speak, "a session")
    assert tokens.shape == (1, MAX_PROMPT_S * FRAMES_PER_S, 8)
    shorter = _vocoder(model_dirs, tmp_path, prompt_s=4.0)
    shorter.load()
    assert shorter.prompt("Trump", VOICES["broad"], _never_speak).shape == (1, 200, 8)


def test_each_session_keeps_one_clip_and_sessions_spread_over_the_clips(tmp_path, model_dirs):
    for i, pitch in enumerate((150, 220, 300)):
        write_prompt_clip(tmp_path / "Samantha" / f"{i}.wav", 1.5 + i, pitch_hz=pitch)
    vocoder = _vocoder(model_dirs, tmp_path)
    vocoder.load()
    clips = load_prompts(tmp_path, SAMPLE_RATE_HZ)["Samantha"]
    picked = {session: choose_prompt(clips, session).path.name for session in SESSIONS}
    assert set(picked.values()) == {"0.wav", "1.wav", "2.wav"}
    # The pick is a function of the session id alone: the same on every call and every machine.
    assert {s: choose_prompt(clips, s).path.name for s in SESSIONS} == picked
    assert choose_prompt(clips, "session-0").path.name == picked["session-0"]

    encoded = []
    encode = vocoder._tokenizer.encode

    def counting(wav, n_q):
        encoded.append(wav.shape[-1])
        return encode(wav, n_q=n_q)

    vocoder._tokenizer.encode = counting
    tokens = {s: vocoder.prompt("Samantha", VOICES["bright"], _never_speak, s) for s in SESSIONS}
    # One encoding per clip, whole: the clip lengths in frames are 75, 125 and 175.
    assert sorted(encoded) == [int((1.5 + i) * SAMPLE_RATE_HZ) for i in range(3)]
    for session, name in picked.items():
        assert tokens[session].shape[1] == int((1.5 + int(name[0])) * FRAMES_PER_S)
        same = [s for s, n in picked.items() if n == name]
        assert all(tokens[s] is tokens[session] for s in same)
    # A turn later in the session (and a voice override) speaks with the same clip.
    later = vocoder.prompt("Samantha", VOICES["deep"], _never_speak, "session-3")
    assert later is tokens["session-3"]


def _two_batman_clips(prompt_dir, model_dirs) -> tuple[TtsSettings, dict[str, str]]:
    """Settings over two Batman prompt clips (a 2 s MP3, a 3 s WAV) and, for each clip's file
    name, a session that picks it."""
    write_prompt_clip(prompt_dir / "Batman" / "low.mp3", 2.0, pitch_hz=110)
    write_prompt_clip(prompt_dir / "Batman" / "high.wav", 3.0, pitch_hz=320)
    settings = dataclasses.replace(
        TtsSettings(),
        backend="espeak",
        cpu_threads=1,
        voice_prompt_dir=prompt_dir,
        soundstorm_dir=model_dirs[0],
        speechtokenizer_dir=model_dirs[1],
        port=0,
        metrics_port=-1,
    )
    clips = load_prompts(prompt_dir, SAMPLE_RATE_HZ)["Batman"]
    by_clip: dict[str, str] = {}
    for session in SESSIONS:
        by_clip.setdefault(choose_prompt(clips, session).path.name, session)
    return settings, by_clip


def test_a_vocode_stream_speaks_with_its_sessions_clip(tmp_path, model_dirs, monkeypatch):
    settings, by_clip = _two_batman_clips(tmp_path, model_dirs)
    engine = TtsEngine(settings, backend=EspeakBackend())
    engine.load()
    units = np.random.default_rng(2).integers(0, 1024, 30)
    prompts = []
    session = engine.vocoder.session
    monkeypatch.setattr(engine.vocoder, "session", lambda p: prompts.append(p) or session(p))

    def voiced(session: str) -> np.ndarray:
        stream = engine.open_vocode(engine.options("Batman", "", 0, 0, vocode=True), session)
        events = [*stream.add(units), *stream.finish()]
        return np.concatenate([e.samples for e in events if hasattr(e, "samples")])

    low, high = by_clip["low.mp3"], by_clip["high.wav"]
    first = voiced(low)
    np.testing.assert_allclose(voiced(low), first, atol=1e-6)
    assert voiced(high).size == first.size == units.size * 320
    # The two-second MP3 for one session, the three-second WAV for the other.
    assert [p.shape[1] for p in prompts] == [100, 100, 150]
    assert prompts[0] is prompts[1]


def test_the_service_picks_the_clip_of_the_requests_session(tmp_path, model_dirs, monkeypatch):
    settings, by_clip = _two_batman_clips(tmp_path, model_dirs)
    engine = TtsEngine(settings, backend=EspeakBackend())
    running = InProcessServer(DEFINITION, settings, engine).start()
    prompts = []
    session_of = engine.vocoder.session
    monkeypatch.setattr(engine.vocoder, "session", lambda p: prompts.append(p) or session_of(p))

    def vocode(session: str) -> None:
        turn = common_pb2.TurnContext(session_id=session, turn_id="t")
        requests = [
            tts_pb2.VocodeRequest(turn=turn, config=tts_pb2.SpeechConfig(character="Batman")),
            tts_pb2.VocodeRequest(turn=turn, units=tts_pb2.UnitChunk(ids=list(range(30)))),
            tts_pb2.VocodeRequest(turn=turn, end=common_pb2.StreamEnd()),
        ]
        with sync_channel(running.address) as channel:
            list(tts_pb2_grpc.TtsServiceStub(channel).Vocode(iter(requests), timeout=120))

    try:
        vocode(by_clip["high.wav"])
        vocode(by_clip["low.mp3"])
    finally:
        running.stop()
    # Three seconds of prompt for the first session, two for the second (50 frames a second).
    assert [p.shape[1] for p in prompts[-2:]] == [150, 100]


def _write_bad(path, kind: str) -> None:
    if kind == "unreadable":
        path.write_bytes(b"ID3 this is not audio at all" * 20)
    elif kind == "silent":
        sf.write(path, np.zeros(3 * 22_050, np.float32), 22_050)
    elif kind == "short":
        write_prompt_clip(path, 0.5)
    else:  # a blip in a long silence
        samples = np.zeros(3 * 22_050, np.float32)
        samples[22_050 : 22_050 + 4_000] = 0.5
        sf.write(path, samples, 22_050)


@pytest.mark.parametrize(
    ("kind", "name", "reason"),
    [
        ("unreadable", "Link/broken.mp3", "cannot be read as audio"),
        ("unreadable", "Link_0.wav", "cannot be read as audio"),
        ("silent", "Link/quiet.flac", "is silent"),
        ("short", "link_1.wav", f"0.50 s long; a voice prompt needs at least {MIN_PROMPT_S:.0f} s"),
        ("blip", "Link.wav", "0.18 s of sound"),
    ],
)
def test_bad_clips_stop_the_start(tmp_path, model_dirs, kind, name, reason):
    write_prompt_clip(tmp_path / "Link" / "good.wav", 2.0)
    path = tmp_path / name
    path.parent.mkdir(exist_ok=True)
    _write_bad(path, kind)
    vocoder = _vocoder(model_dirs, tmp_path)
    with pytest.raises(EngineUnavailable, match=reason) as raised:
        vocoder.load()
    assert f"voice prompt {path} cannot be used" in str(raised.value)
    # Refused before the models were loaded, not at the first turn.
    assert vocoder._soundstorm is None


def test_prompt_settings_are_checked(tmp_path):
    env = {"SOLAMI_TTS_VOICE_PROMPT_DIR": str(tmp_path / "absent")}
    with pytest.raises(SettingsError, match=r"VOICE_PROMPT_DIR .*absent.* is not a directory"):
        load_settings(TtsSettings, "SOLAMI_TTS_", env)
    with pytest.raises(SettingsError, match="VOICE_PROMPT_S must be >= 1"):
        load_settings(TtsSettings, "SOLAMI_TTS_", {"SOLAMI_TTS_VOICE_PROMPT_S": "0.5"})
    settings = load_settings(TtsSettings, "SOLAMI_TTS_", {"SOLAMI_TTS_VOICE_PROMPT_DIR": "."})
    assert settings.voice_prompt_s == MAX_PROMPT_S
