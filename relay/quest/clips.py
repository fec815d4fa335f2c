"""The original relay's body animation clips on a character rig, as Y-up SMPL-X.

``anim_data/<Char>_<Name>.json`` (for example ``Chappie_Idle.json``) is a list of frames, each
``{"frame": n, "<bone>_rotation": [x, y, z, w], "<root>_position": [x, y, z]}`` in the rig's
``aiStream`` conventions at 30 fps. Read back through the rig into SMPL-X, such a clip plays on
every character (the original relay retargeted its Chappie idle the same way).
"""

from __future__ import annotations

import json
import numbers
from pathlib import Path

import numpy as np

from relay.quest.rig import Rig

FRAME_KEY = "frame"


def load_unity_clip(path: Path) -> list[dict[str, str]]:
    """A clip's frames as stream entries: ``{"<bone>_rotation": "x,y,z,w", ...}``."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"cannot read animation clip {path}: {exc}") from exc
    if not isinstance(data, list) or not all(isinstance(frame, dict) for frame in data):
        raise ValueError(f"animation clip {path} must be a list of frame objects")
    entries = []
    for index, frame in enumerate(data):
        entry = {}
        for key, values in frame.items():
            if key == FRAME_KEY:
                continue
            if not isinstance(values, list) or not all(isinstance(v, numbers.Real) for v in values):
                raise ValueError(f"animation clip {path}, frame {index}: {key!r} is not numbers")
            entry[key] = ",".join(str(float(v)) for v in values)
        entries.append(entry)
    return entries


def unity_clip_to_smplx(path: Path, rig: Rig) -> tuple[np.ndarray, np.ndarray]:
    """A clip recorded on ``rig`` as Y-up SMPL-X ``poses`` (T, 165) and ``trans`` (T, 3)."""
    return rig.to_smplx(load_unity_clip(path))
