"""Redis stream entry fields of the Quest protocol: ``"x,y,z,w"`` rotations, ``"x,y,z"`` positions.

Entries read with redis-py arrive with ``bytes`` keys and values; both ``bytes`` and ``str`` are
accepted. Written fields are ``str`` with ``DECIMALS`` decimals. Both directions work on whole
clips at once (a 10 s clip is 300 entries of about 55 fields).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

ROTATION_SUFFIX = "_rotation"
POSITION_SUFFIX = "_position"
# Decimals written for rotations (quaternion components) and positions (metres): 1e-6 is far
# below what a headset can show, and keeps an entry short.
DECIMALS = 6
# Values at least this large are written by the general (slower) float formatter.
_FIXED_POINT_LIMIT = 1e9
_FILLER = 0  # byte dropped from the fixed-point text (absent sign, leading zeros)

Entry = Mapping[str | bytes, str | bytes]


def rotation_key(bone: str) -> str:
    return bone + ROTATION_SUFFIX


def position_key(bone: str) -> str:
    return bone + POSITION_SUFFIX


def _text(value: str | bytes, what: str) -> str:
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ValueError(f"{what} is not UTF-8 text") from exc
    if isinstance(value, str):
        return value
    raise ValueError(f"{what} must be str or bytes, got {type(value).__name__}")


def decode_entry(entry: Entry) -> dict[str, str]:
    """A stream entry with ``str`` keys and values."""
    if not isinstance(entry, Mapping):
        raise ValueError(f"a stream entry must be a mapping of fields, got {type(entry).__name__}")
    fields = {}
    for key, value in entry.items():
        name = _text(key, "a field name")
        fields[name] = _text(value, f"field {name!r}")
    return fields


def decode_entries(entries: Sequence[Entry]) -> list[dict[str, str]]:
    """``decode_entry`` for each entry; errors name the entry's index."""
    decoded = []
    for index, entry in enumerate(entries):
        try:
            decoded.append(decode_entry(entry))
        except ValueError as exc:
            raise ValueError(f"entry {index}: {exc}") from exc
    return decoded


def parse_vector(fields: Mapping[str, str], key: str, size: int) -> np.ndarray:
    """The ``size`` comma-separated finite numbers of field ``key``; ValueError names the field."""
    if key not in fields:
        raise ValueError(f"missing field {key!r}")
    text = fields[key]
    parts = text.split(",")
    if len(parts) != size:
        raise ValueError(f"field {key!r} must hold {size} comma-separated numbers, got {text!r}")
    try:
        values = [float(part) for part in parts]
    except ValueError as exc:
        raise ValueError(f"field {key!r} must hold numbers, got {text!r}") from exc
    if not all(math.isfinite(value) for value in values):
        raise ValueError(f"field {key!r} must hold finite numbers, got {text!r}")
    return np.array(values)


def parse_fields(
    frames: Sequence[Mapping[str, str]],
    keys: Sequence[str],
    size: int,
    required: Sequence[str] = (),
) -> tuple[np.ndarray, np.ndarray]:
    """Fields ``keys`` of every frame as ``(T, K, size)`` numbers and a ``(T, K)`` presence mask.

    Absent fields read as zeros unless listed in ``required``. A malformed field raises
    ValueError naming the entry and the field.
    """
    must = [key in required for key in keys]
    present = np.zeros((len(frames), len(keys)), dtype=bool)
    texts = []
    for index, fields in enumerate(frames):
        for slot, key in enumerate(keys):
            text = fields.get(key)
            if text is not None:
                texts.append(text)
                present[index, slot] = True
            elif must[slot]:
                raise ValueError(f"entry {index}: missing field {key!r}")
    values = np.zeros((len(frames), len(keys), size))
    if not texts:
        return values, present
    try:
        if any(text.count(",") != size - 1 for text in texts):
            raise ValueError("field with a wrong number of values")
        flat = np.array(",".join(texts).split(","), dtype=np.float64)
        if not np.isfinite(flat).all():
            raise ValueError("non-finite value")
    except ValueError:
        _raise_first_error(frames, keys, size)
        raise
    values[present] = flat.reshape(-1, size)
    return values, present


def _raise_first_error(frames: Sequence[Mapping[str, str]], keys: Sequence[str], size: int) -> None:
    for index, fields in enumerate(frames):
        for key in keys:
            if key in fields:
                try:
                    parse_vector(fields, key, size)
                except ValueError as exc:
                    raise ValueError(f"entry {index}: {exc}") from None


def parse_rotations(
    frames: Sequence[Mapping[str, str]], keys: Sequence[str], required: Sequence[str] = ()
) -> tuple[np.ndarray, np.ndarray]:
    """Quaternion fields as ``(T, K, 4)`` unit ``(x, y, z, w)`` (identity where absent) and the
    ``(T, K)`` presence mask; a zero quaternion is an error naming the entry and field."""
    quats, present = parse_fields(frames, keys, 4, required)
    norms = np.linalg.norm(quats, axis=-1)
    bad = present & (norms < 1e-6)
    if bad.any():
        index, slot = np.argwhere(bad)[0]
        text = frames[index][keys[slot]]
        raise ValueError(f"entry {index}: field {keys[slot]!r} is a zero quaternion: {text!r}")
    quats[~present] = (0.0, 0.0, 0.0, 1.0)
    norms[~present] = 1.0
    return quats / norms[..., None], present


def format_rows(values: np.ndarray, decimals: int = DECIMALS) -> list[str]:
    """Each row of a ``(N, k)`` array as ``"v1,...,vk"``, each value like ``f"{v:.6f}"``
    (``decimals`` places, never ``-0``).

    Finite values below ``_FIXED_POINT_LIMIT`` are written with integer arithmetic in numpy,
    several times faster than formatting each float in Python (a clip is ~60k numbers).
    """
    if decimals < 1:
        raise ValueError(f"decimals must be at least 1, got {decimals}")
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 2:
        raise ValueError(f"expected a (N, k) array, got shape {values.shape}")
    rows, width = values.shape
    if not values.size:
        return [""] * rows
    if not np.isfinite(values).all() or np.abs(values).max() >= _FIXED_POINT_LIMIT:
        row = ",".join([f"%.{decimals}f"] * width)
        values = np.round(values, decimals) + 0.0  # no "-0.000000"
        return ("\n".join([row] * rows) % tuple(values.ravel().tolist())).split("\n")
    units = np.rint(np.abs(values) * 10**decimals).astype(np.int64)
    whole, fraction = np.divmod(units, 10**decimals)
    digits = max(1, len(str(int(whole.max()))))
    # Per value: sign, integer digits, ".", fraction digits, then "," or "\n".
    text = np.full((rows, width, digits + decimals + 3), _FILLER, dtype=np.uint8)
    text[..., 0] = np.where((values < 0) & (units > 0), ord("-"), _FILLER)
    for place in range(digits):
        digit = (whole // 10**place) % 10
        shown = (whole >= 10**place) | (place == 0)
        text[..., digits - place] = np.where(shown, ord("0") + digit, _FILLER)
    text[..., digits + 1] = ord(".")
    for place in range(decimals):
        text[..., digits + 1 + decimals - place] = ord("0") + fraction % 10
        fraction = fraction // 10
    text[..., -1] = ord(",")
    text[:, -1, -1] = ord("\n")
    joined = text.tobytes().decode("ascii").replace("\0", "")
    return joined.split("\n")[:rows]
