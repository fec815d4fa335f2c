"""Whole-clip face animation files: the original ``face_ai.npz`` layout, and LiveLinkFace CSV
recordings (``Idle.csv``).

The file is a compressed npz holding, for ``n`` frames at 30 fps:
- ``Timecode``: ``<U11`` strings ``HH:MM:SS:FF`` where ``FF`` counts 60 Hz fields, so 30 fps
  frames advance it by 2 (``00:00:00:00``, ``00:00:00:02``, ... ``00:00:01:00``);
- ``BlendShapeCount``: int64, one entry per frame, always 61;
- ``n_frames``: int64 scalar;
- one float16 array of ``n`` weights per channel, named in PascalCase (``JawOpen``).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from solami.avatar.face import CHANNEL_COUNT, CHANNELS
from solami.avatar.rates import FPS
from solami.errors import InvalidInput

# LiveLinkFace time codes count fields at this rate (two per 30 fps frame).
TIMECODE_RATE_HZ = 60
# Keys of the npz that are not channels.
META_KEYS = ("Timecode", "BlendShapeCount", "n_frames")
# Storage type of the channel arrays in the original files.
WEIGHT_DTYPE = np.float16


def timecode(frame: int, fps: int = FPS) -> str:
    """``HH:MM:SS:FF`` of frame ``frame`` at ``fps`` (``FF`` in 60 Hz fields)."""
    fields = frame * TIMECODE_RATE_HZ // fps
    seconds, field = divmod(fields, TIMECODE_RATE_HZ)
    minutes, second = divmod(seconds, 60)
    hours, minute = divmod(minutes, 60)
    return f"{hours:02d}:{minute:02d}:{second:02d}:{field:02d}"


def timecodes(n_frames: int, start_frame: int = 0) -> np.ndarray:
    """Time codes of ``n_frames`` consecutive frames as the ``<U11`` array of the npz."""
    return np.array([timecode(start_frame + i) for i in range(n_frames)], dtype="<U11")


def to_npz_bytes(frames: np.ndarray, start_frame: int = 0) -> bytes:
    """``(n, 61)`` weights -> the bytes of an npz in the original layout."""
    frames = np.asarray(frames)
    if frames.ndim != 2 or frames.shape[1] != CHANNEL_COUNT:
        raise ValueError(f"face frames must be (n, {CHANNEL_COUNT}), got {frames.shape}")
    n = frames.shape[0]
    arrays: dict[str, np.ndarray] = {
        "Timecode": timecodes(n, start_frame),
        "BlendShapeCount": np.full(n, CHANNEL_COUNT, dtype=np.int64),
    }
    for column, name in enumerate(CHANNELS):
        arrays[name] = frames[:, column].astype(WEIGHT_DTYPE)
    arrays["n_frames"] = np.array(n, dtype=np.int64)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


def write_npz(path: Path, frames: np.ndarray, start_frame: int = 0) -> None:
    """Writes ``frames`` to ``path`` in the original layout."""
    Path(path).write_bytes(to_npz_bytes(frames, start_frame))


def read_npz(source: Path | bytes) -> tuple[np.ndarray, np.ndarray]:
    """Reads an npz in the original layout: ``(n, 61)`` float32 weights and the time codes."""
    data = io.BytesIO(source) if isinstance(source, bytes) else source
    try:
        with np.load(data, allow_pickle=False) as npz:
            missing = [k for k in (*META_KEYS, *CHANNELS) if k not in npz.files]
            if missing:
                raise InvalidInput(f"face npz lacks {', '.join(missing[:5])}")
            frames = np.stack([npz[name].astype(np.float32) for name in CHANNELS], axis=1)
            codes = npz["Timecode"]
            n = int(npz["n_frames"])
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"not a face npz: {exc}") from None
    if frames.shape[0] != n or codes.shape[0] != n:
        raise InvalidInput(f"face npz says n_frames={n} but holds {frames.shape[0]} frames")
    return frames, codes


def load_livelink_csv(path: Path) -> np.ndarray:
    """A LiveLinkFace CSV recording as ``(T, 61)`` float32 weights in ``CHANNELS`` order.

    Rows are taken as consecutive frames at ``FPS``; a missing channel or a malformed value
    raises ValueError.
    """
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            rows = list(csv.reader(handle))
    except OSError as exc:
        raise ValueError(f"cannot read face clip {path}: {exc}") from exc
    if not rows:
        raise ValueError(f"face clip {path} is empty")
    header = [name.strip() for name in rows[0]]
    missing = [name for name in CHANNELS if name not in header]
    if missing:
        raise ValueError(f"face clip {path} lacks channels {', '.join(missing)}")
    columns = [header.index(name) for name in CHANNELS]
    weights = np.empty((len(rows) - 1, CHANNEL_COUNT), dtype=np.float32)
    for line, row in enumerate(rows[1:], start=2):
        try:
            weights[line - 2] = [float(row[column]) for column in columns]
        except (IndexError, ValueError) as exc:
            raise ValueError(f"face clip {path}, line {line}: {exc}") from exc
    if not np.isfinite(weights).all():
        raise ValueError(f"face clip {path} holds non-finite values")
    return weights
