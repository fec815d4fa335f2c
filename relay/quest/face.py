"""Face animation for the headset: LiveLinkFace channels as ``aiStream`` blendshape fields.

Face clips carry the 61 LiveLinkFace channels in their order (52 ARKit blendshapes in
PascalCase, then head and eye angles). The headset takes one field per ARKit blendshape, named
in lowerCamelCase (``jawOpen``, ``eyeBlinkLeft``, ...), with the weight as a decimal in [0, 1].
"""

from __future__ import annotations

import csv
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from relay.quest.fields import format_rows
from services.face.channels import CHANNELS, lower_camel

FPS = 30
# LiveLinkFace CSV / face npz channel order (after the Timecode and BlendShapeCount columns).
LIVELINK_CHANNELS: tuple[str, ...] = CHANNELS
NUM_CHANNELS = len(LIVELINK_CHANNELS)  # 61
NUM_BLENDSHAPES = 52  # the ARKit blendshapes lead the channel list
# Decimals of a written weight: 1e-4 is below any visible change of a blendshape.
WEIGHT_DECIMALS = 4


def field_name(channel: str) -> str:
    """The ``aiStream`` field of a LiveLinkFace channel: ``JawOpen`` -> ``jawOpen``."""
    return lower_camel(channel)


FACE_FIELDS: tuple[str, ...] = tuple(field_name(c) for c in LIVELINK_CHANNELS[:NUM_BLENDSHAPES])


def face_fields(weights: np.ndarray) -> list[dict[str, str]]:
    """Channel weights ``(61,)`` or ``(T, 61)`` as T ``aiStream`` face entries.

    Each entry has the 52 ARKit blendshape fields with weights clipped to [0, 1]; the head and
    eye angle channels are not sent.
    """
    weights = np.asarray(weights, dtype=np.float64)
    if weights.ndim == 1:
        weights = weights[None]
    if weights.ndim != 2 or weights.shape[1] != NUM_CHANNELS:
        raise ValueError(f"face weights must have shape (T, {NUM_CHANNELS}), got {weights.shape}")
    if not np.isfinite(weights).all():
        raise ValueError("face weights must be finite")
    rows = format_rows(np.clip(weights[:, :NUM_BLENDSHAPES], 0.0, 1.0), WEIGHT_DECIMALS)
    return [dict(zip(FACE_FIELDS, row.split(","), strict=True)) for row in rows]


def load_livelink_csv(path: Path) -> np.ndarray:
    """A LiveLinkFace CSV recording as ``(T, 61)`` float32 weights in ``LIVELINK_CHANNELS`` order.

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
    missing = [name for name in LIVELINK_CHANNELS if name not in header]
    if missing:
        raise ValueError(f"face clip {path} lacks channels {', '.join(missing)}")
    columns = [header.index(name) for name in LIVELINK_CHANNELS]
    weights = np.empty((len(rows) - 1, NUM_CHANNELS), dtype=np.float32)
    for line, row in enumerate(rows[1:], start=2):
        try:
            weights[line - 2] = [float(row[column]) for column in columns]
        except (IndexError, ValueError) as exc:
            raise ValueError(f"face clip {path}, line {line}: {exc}") from exc
    if not np.isfinite(weights).all():
        raise ValueError(f"face clip {path} holds non-finite values")
    return weights


def face_npz_weights(data: Mapping[str, np.ndarray]) -> np.ndarray:
    """A face npz (one array per channel, plus ``Timecode``, ``BlendShapeCount``, ``n_frames``)
    as ``(T, 61)`` float32 weights in ``LIVELINK_CHANNELS`` order."""
    missing = [name for name in LIVELINK_CHANNELS if name not in data]
    if missing:
        raise ValueError(f"face npz lacks channels {', '.join(missing)}")
    columns = [np.asarray(data[name], dtype=np.float32).reshape(-1) for name in LIVELINK_CHANNELS]
    if len({len(column) for column in columns}) != 1:
        raise ValueError("face npz channels differ in length")
    return np.stack(columns, axis=1)
