"""Decoding and checking the WAV files users and headsets send, and resampling them.

Accepted: RIFF/WAVE, 8-48 kHz, mono or stereo, PCM16/24/32 or float. Everything else is an
``InvalidInput`` whose message says what was wrong.
"""

from __future__ import annotations

import io

import numpy as np
import soundfile as sf
import soxr

from solami.errors import InvalidInput

MIN_SAMPLE_RATE_HZ = 8_000
MAX_SAMPLE_RATE_HZ = 48_000
MAX_CHANNELS = 2
# Largest absolute float sample accepted (float WAVs may overshoot 1.0 a little).
MAX_FLOAT_AMPLITUDE = 8.0


def decode_wav(data: bytes, max_duration_s: float) -> tuple[np.ndarray, int]:
    """Decodes a whole WAV into mono float32 samples in [-1, 1] and its sample rate."""
    if not data:
        raise InvalidInput("audio is empty: expected a WAV file")
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise InvalidInput("audio is not a WAV file (no RIFF/WAVE header)")
    try:
        info = sf.info(io.BytesIO(data))
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise InvalidInput(f"WAV header is truncated or malformed: {_reason(exc)}") from None
    rate = info.samplerate
    if not MIN_SAMPLE_RATE_HZ <= rate <= MAX_SAMPLE_RATE_HZ:
        raise InvalidInput(
            f"sample rate {rate} Hz is not supported: use {MIN_SAMPLE_RATE_HZ}-"
            f"{MAX_SAMPLE_RATE_HZ} Hz"
        )
    if not 1 <= info.channels <= MAX_CHANNELS:
        raise InvalidInput(f"{info.channels} channels is not supported: use mono or stereo")
    if info.frames / rate > max_duration_s:
        raise InvalidInput(
            f"audio is {info.frames / rate:.1f} s long; the limit is {max_duration_s:.0f} s"
        )
    try:
        samples, _ = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise InvalidInput(f"WAV data cannot be decoded: {_reason(exc)}") from None
    return check_samples(samples.mean(axis=1)), rate


def _reason(exc: Exception) -> str:
    """libsndfile's own explanation, without the in-memory file object's repr."""
    return getattr(exc, "error_string", None) or str(exc).rsplit(": ", 1)[-1]


def check_samples(samples: np.ndarray) -> np.ndarray:
    """Rejects NaN/inf or wildly out-of-range samples; returns float32 samples."""
    samples = np.asarray(samples, dtype=np.float32)
    if not np.all(np.isfinite(samples)):
        raise InvalidInput("audio contains NaN or infinite samples")
    if samples.size and float(np.max(np.abs(samples))) > MAX_FLOAT_AMPLITUDE:
        raise InvalidInput("audio samples are far outside [-1, 1]: is the float WAV scaled?")
    return samples


def pcm16_to_float(data: bytes, channels: int = 1) -> np.ndarray:
    """Interleaved little-endian PCM16 -> mono float32."""
    if len(data) % (2 * channels):
        raise InvalidInput("PCM16 chunk does not hold whole sample frames")
    samples = np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0
    return samples.reshape(-1, channels).mean(axis=1) if channels > 1 else samples


def float_to_pcm16(samples: np.ndarray) -> bytes:
    """Mono float32 in [-1, 1] -> little-endian PCM16 bytes (clipped)."""
    return (np.clip(samples, -1.0, 1.0) * 32767.0).round().astype("<i2").tobytes()


def resample(samples: np.ndarray, rate_in_hz: int, rate_out_hz: int) -> np.ndarray:
    """High-quality resampling (soxr)."""
    if rate_in_hz == rate_out_hz:
        return samples.astype(np.float32, copy=False)
    return soxr.resample(samples, rate_in_hz, rate_out_hz, quality="HQ").astype(np.float32)


def encode_wav(samples: np.ndarray, rate_hz: int) -> bytes:
    """Mono float32 -> a PCM16 WAV file."""
    buffer = io.BytesIO()
    sf.write(buffer, np.clip(samples, -1.0, 1.0), rate_hz, subtype="PCM_16", format="WAV")
    return buffer.getvalue()
