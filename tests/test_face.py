"""The face engine with the embedded lip-sync model: frame counts, time codes, silence and
speech, streaming equivalence, phoneme timings, the npz layout of the original files."""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from services.face.backends.base import frame_count
from services.face.engine import FaceEngine, Phoneme
from services.face.settings import FaceSettings
from solami import audio
from solami.avatar import face_npz as npz
from solami.avatar.face import CHANNELS, INDEX, MOUTH_CHANNELS, indices, lower_camel, pascal
from solami.errors import InvalidInput
from solami.settings import SettingsError, load_settings
from tests.support.face_speech import espeak_with_phonemes
from tests.support.speech import ESPEAK_RATE_HZ, espeak

DATA = Path(__file__).resolve().parents[2] / "shared" / "solami-data"
REFERENCE_NPZ = DATA / "face_data" / "face_ai.npz"
REFERENCE_WAV = DATA / "audio" / "audio_ai.wav"
IDLE_CSV = DATA / "face_data" / "Idle.csv"
SENTENCE = "Hello there, how are you doing today?"
JAW = INDEX["JawOpen"]


@pytest.fixture(scope="module")
def engine() -> FaceEngine:
    face = FaceEngine(FaceSettings())
    face.load()
    face.warmup()
    return face


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    return espeak(SENTENCE)


def _with_silence(speech: np.ndarray, rate: int, lead_s: float, tail_s: float) -> np.ndarray:
    return np.concatenate(
        [np.zeros(int(lead_s * rate), np.float32), speech, np.zeros(int(tail_s * rate), np.float32)]
    )


def test_channel_order_matches_the_reference_files():
    with np.load(REFERENCE_NPZ) as reference:
        keys = [k for k in reference.files if k not in npz.META_KEYS]
    with open(IDLE_CSV, newline="") as f:
        header = next(csv.reader(f))
    assert tuple(keys) == CHANNELS
    assert tuple(header[2:]) == CHANNELS
    assert len(CHANNELS) == 61
    assert lower_camel("JawOpen") == "jawOpen" and lower_camel("HeadYaw") == "headYaw"
    assert all(pascal(lower_camel(name)) == name for name in CHANNELS)
    assert indices(["jawOpen", "EyeBlinkLeft"]) == [JAW, 0]


@pytest.mark.parametrize("rate_hz", [8_000, 16_000, 22_050, 44_100, 48_000])
@pytest.mark.parametrize("seconds", [0.01, 0.5, 1.0, 2.37, 3.798])
def test_frame_count_is_rounded_seconds_times_thirty(engine, rate_hz, seconds):
    samples = np.zeros(round(seconds * rate_hz), dtype=np.float32)
    frames = engine.animate(samples, rate_hz)
    assert frames.shape == (frame_count(len(samples), rate_hz), 61)
    assert abs(len(frames) - seconds * 30) <= 0.5 + 1e-6
    assert frames.dtype == np.float32
    assert np.all((frames >= 0) & (frames <= 1))


def test_no_audio_gives_no_frames(engine):
    assert engine.animate(np.zeros(0, np.float32), 16_000).shape == (0, 61)
    stream = engine.open(16_000)
    assert stream.finish().shape == (0, 61)


def test_time_codes_follow_the_livelinkface_convention():
    assert npz.timecode(0) == "00:00:00:00"
    assert npz.timecode(1) == "00:00:00:02"
    assert npz.timecode(29) == "00:00:00:58"
    assert npz.timecode(30) == "00:00:01:00"
    assert npz.timecode(30 * 3600 + 30 * 61 + 7) == "01:01:01:14"
    with np.load(REFERENCE_NPZ) as reference:
        expected = reference["Timecode"]
    assert list(npz.timecodes(len(expected))) == list(expected)


def test_silence_keeps_the_mouth_closed_and_the_eyes_alive(engine):
    frames = engine.animate(np.zeros(10 * 16_000, np.float32), 16_000)
    assert np.max(frames[:, indices(MOUTH_CHANNELS)]) < 0.02
    blinks = frames[:, INDEX["EyeBlinkLeft"]]
    assert blinks.max() > 0.9, "a 10 s face blinks"
    assert np.count_nonzero(np.diff((blinks > 0.5).astype(int)) == 1) >= 2


@pytest.mark.parametrize("rate_hz", [8_000, 22_050, 48_000])
def test_speech_opens_the_mouth_only_while_speaking(engine, speech, rate_hz):
    clip = _with_silence(audio.resample(speech, ESPEAK_RATE_HZ, rate_hz), rate_hz, 1.0, 1.0)
    frames = engine.animate(clip, rate_hz)
    jaw = frames[:, JAW]
    speech_frames = slice(30 + 5, 30 + round(len(speech) / ESPEAK_RATE_HZ * 30) - 5)
    assert jaw[speech_frames].max() > 0.25
    assert jaw[speech_frames].mean() > 0.05
    assert jaw[:20].max() < 0.02 and jaw[-20:].max() < 0.02
    # The mouth opens and closes with syllables rather than holding one pose.
    assert np.count_nonzero(np.diff((jaw[speech_frames] > 0.12).astype(int)) == 1) >= 3


def test_streaming_in_any_chunk_sizes_equals_the_whole_clip(engine, speech):
    rate = 44_100
    clip = _with_silence(audio.resample(speech, ESPEAK_RATE_HZ, rate), rate, 0.3, 0.4)
    whole = engine.animate(clip, rate, start_frame=12)
    rng = np.random.default_rng(3)
    for sizes in ([1, 7, 441, 4410], [rate * 10], list(rng.integers(1, 3000, 50))):
        stream = engine.open(rate, start_frame=12)
        parts, at, i = [], 0, 0
        while at < len(clip):
            step = int(sizes[i % len(sizes)])
            parts.append(stream.push(clip[at : at + step]))
            at, i = at + step, i + 1
        parts.append(stream.finish())
        streamed = np.concatenate(parts)
        assert streamed.shape == whole.shape
        np.testing.assert_array_equal(streamed, whole)
        assert stream.frames_sent == len(whole)


def test_frames_leave_while_audio_still_arrives(engine, speech):
    stream = engine.open(ESPEAK_RATE_HZ)
    chunk = ESPEAK_RATE_HZ // 10
    early = sum(len(stream.push(speech[i : i + chunk])) for i in range(0, len(speech), chunk))
    total = early + len(stream.finish())
    # Only the lookahead (under 0.25 s of frames) waits for the end of the stream.
    assert early >= total - 8


def test_phoneme_timings_drive_the_visemes(engine):
    samples, phonemes = espeak_with_phonemes("Pop, mama, we see you.")
    frames = engine.animate(samples, ESPEAK_RATE_HZ, phonemes=phonemes)
    assert len(frames) == frame_count(len(samples), ESPEAK_RATE_HZ)

    def during(symbols: set[str], channel: str) -> float:
        rows = [
            frames[min(round((p.start_s + p.end_s) / 2 * 30), len(frames) - 1), INDEX[channel]]
            for p in phonemes
            if p.symbol.strip("ˈˌː") in symbols
        ]
        assert rows, symbols
        return float(np.mean(rows))

    assert during({"p", "m"}, "MouthPressLeft") > during({"ɑ", "ə"}, "MouthPressLeft") + 0.05
    assert during({"ɑ"}, "JawOpen") > during({"p", "m"}, "JawOpen") + 0.1
    assert during({"u", "w"}, "MouthPucker") > during({"i"}, "MouthPucker") + 0.1
    assert during({"i"}, "MouthStretchLeft") > during({"u", "w"}, "MouthStretchLeft") + 0.05


def test_timings_sent_ahead_of_their_audio_give_the_whole_clip_result(engine):
    samples, phonemes = espeak_with_phonemes("Nice to meet you.")
    whole = engine.animate(samples, ESPEAK_RATE_HZ, phonemes=phonemes)
    stream = engine.open(ESPEAK_RATE_HZ)
    parts, half = [], len(phonemes) // 2
    stream.add_phonemes(phonemes[:half])
    split = round(phonemes[half].start_s * ESPEAK_RATE_HZ) - ESPEAK_RATE_HZ // 2
    parts.append(stream.push(samples[: max(split, 0)]))
    stream.add_phonemes(phonemes[half:])
    parts += [stream.push(samples[max(split, 0) :]), stream.finish()]
    np.testing.assert_array_equal(np.concatenate(parts), whole)
    assert not np.allclose(whole, engine.animate(samples, ESPEAK_RATE_HZ))


def test_the_same_audio_gives_the_same_frames(engine, speech):
    first = engine.animate(speech, ESPEAK_RATE_HZ)
    again = FaceEngine(FaceSettings()).animate(speech, ESPEAK_RATE_HZ)
    np.testing.assert_array_equal(first, again)
    still = FaceEngine(dataclasses.replace(FaceSettings(), idle_motion=0.0))
    quiet = still.animate(np.zeros(5 * 16_000, np.float32), 16_000)
    assert np.all(quiet == 0.0)


def test_npz_layout_is_identical_to_the_original(engine, tmp_path):
    samples, rate = audio.decode_wav(REFERENCE_WAV.read_bytes(), 60)
    frames = engine.animate(samples, rate)
    path = tmp_path / "face.npz"
    npz.write_npz(path, frames)
    with np.load(REFERENCE_NPZ) as reference, np.load(path) as ours:
        assert ours.files == reference.files
        for key in reference.files:
            assert ours[key].dtype == reference[key].dtype, key
            assert ours[key].ndim == reference[key].ndim, key
        assert int(ours["n_frames"]) == len(frames) == ours["Timecode"].shape[0]
        assert set(ours["BlendShapeCount"].tolist()) == {61}
    back, codes = npz.read_npz(path)
    np.testing.assert_allclose(back, frames, atol=1e-3)  # float16 storage
    assert codes[1] == "00:00:00:02"
    with pytest.raises(InvalidInput, match="not a face npz"):
        npz.read_npz(b"not an npz")


def test_jaw_follows_the_reference_unitalker_output(engine):
    samples, rate = sf.read(REFERENCE_WAV, dtype="float32")
    frames = engine.animate(samples, rate)
    reference, _ = npz.read_npz(REFERENCE_NPZ)
    n = min(len(frames), len(reference))
    correlation = np.corrcoef(frames[:n, JAW], reference[:n, JAW])[0, 1]
    assert correlation >= 0.6
    mae = np.abs(frames[:n, indices(MOUTH_CHANNELS)] - reference[:n, indices(MOUTH_CHANNELS)])
    assert mae.mean() < 0.15


def test_settings_are_read_from_the_environment_and_checked():
    settings = load_settings(
        FaceSettings, "SOLAMI_FACE_", {"SOLAMI_FACE_MAX_AUDIO_S": "30", "SOLAMI_FACE_SEED": "3"}
    )
    assert settings.max_audio_s == 30 and settings.seed == 3 and settings.port == 50055
    for env, message in (
        ({"SOLAMI_FACE_BACKEND": "audio2face"}, "SOLAMI_FACE_BACKEND must be one of"),
        ({"SOLAMI_FACE_BACKEND": "unitalker"}, "needs SOLAMI_FACE_UNITALKER_WEIGHTS"),
        ({"SOLAMI_FACE_MAX_AUDIO_S": "0"}, "MAX_AUDIO_S must be > 0"),
        ({"SOLAMI_FACE_IDLE_MOTION": "2"}, "IDLE_MOTION must be in"),
    ):
        with pytest.raises(SettingsError, match=message):
            load_settings(FaceSettings, "SOLAMI_FACE_", env)


def test_engine_rejects_what_it_cannot_animate(engine):
    with pytest.raises(InvalidInput, match="unknown backend 'audio2face'"):
        engine.open(16_000, backend="audio2face")
    with pytest.raises(InvalidInput, match="'unitalker' is not enabled"):
        engine.open(16_000, backend="unitalker")
    with pytest.raises(InvalidInput, match="sample rate 4000 Hz"):
        engine.open(4_000)
    short = FaceEngine(dataclasses.replace(FaceSettings(), max_audio_s=1.0))
    stream = short.open(16_000)
    stream.push(np.zeros(16_000, np.float32))
    with pytest.raises(InvalidInput, match="limit of 1 s"):
        stream.push(np.zeros(1, np.float32))
    with pytest.raises(InvalidInput, match="NaN"):
        engine.open(16_000).push(np.array([0.0, np.nan], np.float32))
    with pytest.raises(InvalidInput, match="ends before it starts"):
        engine.open(16_000).add_phonemes([Phoneme("a", 1.0, 0.5)])
