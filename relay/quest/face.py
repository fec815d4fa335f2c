"""Face animation for the headset: LiveLinkFace channels as ``aiStream`` blendshape fields.

Face frames carry the 61 LiveLinkFace channels in their order (``solami.avatar.face``: 52 ARKit
blendshapes in PascalCase, then head and eye angles). The headset takes one field per ARKit
blendshape, named in lowerCamelCase (``jawOpen``, ``eyeBlinkLeft``, ...), with the weight as a
decimal in [0, 1].
"""

from __future__ import annotations

import numpy as np

from relay.quest.fields import format_rows
from solami.avatar.face import ARKIT_BLENDSHAPES, BLENDSHAPE_COUNT, CHANNEL_COUNT, lower_camel

# Decimals of a written weight: 1e-4 is below any visible change of a blendshape.
WEIGHT_DECIMALS = 4
# The aiStream field of each ARKit blendshape: ``JawOpen`` -> ``jawOpen``.
FACE_FIELDS: tuple[str, ...] = tuple(lower_camel(name) for name in ARKIT_BLENDSHAPES)


def face_fields(weights: np.ndarray) -> list[dict[str, str]]:
    """Channel weights ``(61,)`` or ``(T, 61)`` as T ``aiStream`` face entries.

    Each entry has the 52 ARKit blendshape fields with weights clipped to [0, 1]; the head and
    eye angle channels are not sent.
    """
    weights = np.asarray(weights, dtype=np.float64)
    if weights.ndim == 1:
        weights = weights[None]
    if weights.ndim != 2 or weights.shape[1] != CHANNEL_COUNT:
        raise ValueError(f"face weights must have shape (T, {CHANNEL_COUNT}), got {weights.shape}")
    if not np.isfinite(weights).all():
        raise ValueError("face weights must be finite")
    rows = format_rows(np.clip(weights[:, :BLENDSHAPE_COUNT], 0.0, 1.0), WEIGHT_DECIMALS)
    return [dict(zip(FACE_FIELDS, row.split(","), strict=True)) for row in rows]
