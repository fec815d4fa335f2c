"""Malformed audio for the services' bad-input tests."""

from __future__ import annotations

import io
import struct

import numpy as np
import soundfile as sf


def wav_header(rate: int, channels: int = 1, bits: int = 16, data_len: int = 32_000) -> bytes:
    """A PCM WAV header claiming ``data_len`` bytes of data at ``rate`` (data not included)."""
    byte_rate = rate * channels * bits // 8
    fmt = struct.pack("<HHIIHH", 1, channels, rate, byte_rate, channels * bits // 8, bits)
    return (
        b"RIFF"
        + struct.pack("<I", 36 + data_len)
        + b"WAVE"
        + b"fmt "
        + struct.pack("<I", 16)
        + fmt
        + b"data"
        + struct.pack("<I", data_len)
    )


def _float_wav_with(value: float) -> bytes:
    """A 1 s 16 kHz float WAV of silence with one sample set to ``value``."""
    buffer = io.BytesIO()
    samples = np.zeros(16_000, dtype=np.float32)
    samples[100] = value
    sf.write(buffer, samples, 16_000, subtype="FLOAT", format="WAV")
    return buffer.getvalue()


def nan_wav() -> bytes:
    """A 1 s float WAV with one NaN sample."""
    return _float_wav_with(np.nan)


def inf_wav() -> bytes:
    """A 1 s float WAV with one +inf sample."""
    return _float_wav_with(np.inf)
