"""Face channels as aiStream ARKit blendshape fields; the LiveLinkFace clip loaders."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np
import pytest

from relay.quest.face import FACE_FIELDS, face_fields
from services.face.backends.unitalker_model import ETF_BLENDSHAPES
from solami.avatar.face import CHANNEL_COUNT
from solami.avatar.face import CHANNELS as LIVELINK_CHANNELS
from solami.avatar.face_npz import load_livelink_csv, read_npz

DATA = Path(__file__).resolve().parents[2] / "shared" / "solami-data"
needs_data = pytest.mark.skipif(
    not DATA.is_dir(), reason=f"SOLAMI data folder {DATA} (../shared/solami-data) is missing"
)
WEIGHT = re.compile(r"^[01]\.\d{4}$")

# Apple ARKit ARFaceAnchor.BlendShapeLocation raw values (as UniTalker's 3D-ETF head lists them).
ARKIT = set(ETF_BLENDSHAPES)


def test_fields_are_the_52_arkit_blendshapes():
    assert len(ARKIT) == 52
    assert len(FACE_FIELDS) == 52 and set(FACE_FIELDS) == ARKIT
    assert CHANNEL_COUNT == len(LIVELINK_CHANNELS) == 61


@needs_data
def test_channel_order_is_livelinkfaces():
    with open(DATA / "face_data" / "Idle.csv", newline="") as handle:
        header = next(csv.reader(handle))
    assert tuple(header[2:]) == LIVELINK_CHANNELS
    npz = np.load(DATA / "face_data" / "face_ai.npz")
    channels = [k for k in npz.files if k not in ("Timecode", "BlendShapeCount", "n_frames")]
    assert tuple(channels) == LIVELINK_CHANNELS


@needs_data
def test_idle_csv_becomes_fields_in_unit_range():
    weights = load_livelink_csv(DATA / "face_data" / "Idle.csv")
    assert weights.shape == (304, 61) and weights.dtype == np.float32
    assert weights.min() < 0  # the recording dips slightly below zero: clipped when sent
    frames = face_fields(weights)
    assert len(frames) == len(weights)
    for frame in frames:
        assert tuple(frame) == FACE_FIELDS
        assert all(WEIGHT.match(value) for value in frame.values())
        values = np.array([float(v) for v in frame.values()])
        assert values.min() >= 0.0 and values.max() <= 1.0
    first = frames[0]
    assert first["eyeBlinkLeft"] == "1.0000"
    assert float(first["jawOpen"]) == pytest.approx(
        weights[0, LIVELINK_CHANNELS.index("JawOpen")], abs=1e-4
    )


@needs_data
def test_face_npz_channels_are_read_in_order():
    npz = np.load(DATA / "face_data" / "face_ai.npz")
    weights, _ = read_npz(DATA / "face_data" / "face_ai.npz")
    assert weights.shape == (int(npz["n_frames"]), 61)
    np.testing.assert_allclose(weights[:, 17], npz["JawOpen"].astype(np.float32))
    assert len(face_fields(weights)) == int(npz["n_frames"])


def test_one_frame_and_clipping():
    weights = np.linspace(-0.5, 1.5, 61)
    frames = face_fields(weights)
    assert len(frames) == 1
    values = [float(v) for v in frames[0].values()]
    np.testing.assert_allclose(values, np.clip(weights[:52], 0.0, 1.0), atol=5e-5)
    assert values[0] == 0.0 and values[-1] == 1.0
    assert face_fields(np.ones(61))[0]["tongueOut"] == "1.0000"


@pytest.mark.parametrize("weights", [np.zeros(52), np.zeros((2, 60)), np.full(61, np.nan)])
def test_bad_weights_are_rejected(weights):
    with pytest.raises(ValueError, match="face weights"):
        face_fields(weights)


def test_malformed_csv_is_a_clear_error(tmp_path):
    path = tmp_path / "face.csv"
    path.write_text("Timecode,BlendShapeCount,EyeBlinkLeft\n00:00:00:00,61,1\n")
    with pytest.raises(ValueError, match="lacks channels EyeLookDownLeft"):
        load_livelink_csv(path)
    header = ",".join(("Timecode", "BlendShapeCount", *LIVELINK_CHANNELS))
    path.write_text(header + "\n" + "00:00:00:00,61," + ",".join(["0.1"] * 60) + ",x\n")
    with pytest.raises(ValueError, match="line 2"):
        load_livelink_csv(path)
    with pytest.raises(ValueError, match="cannot read face clip"):
        load_livelink_csv(tmp_path / "missing.csv")
