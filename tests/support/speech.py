"""Real speech for tests: eSpeak NG (bundled by espeakng-loader) through its C API."""

from __future__ import annotations

import ctypes
import re

import numpy as np

from solami import audio

ESPEAK_RATE_HZ = 22_050
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_PARAM_RATE = 1
_SYNTH_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
)


def espeak(text: str, voice: str = "en-us", words_per_minute: int = 165) -> np.ndarray:
    """Speaks ``text``; returns mono float32 at 22.05 kHz."""
    import espeakng_loader

    lib = ctypes.CDLL(espeakng_loader.get_library_path())
    lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
    lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
    lib.espeak_Synth.argtypes = [
        ctypes.c_char_p,
        ctypes.c_size_t,
        ctypes.c_uint,
        ctypes.c_int,
        ctypes.c_uint,
        ctypes.c_uint,
        ctypes.c_void_p,
        ctypes.c_void_p,
    ]
    rate = lib.espeak_Initialize(
        _AUDIO_OUTPUT_SYNCHRONOUS, 0, espeakng_loader.get_data_path().encode(), 0
    )
    assert rate == ESPEAK_RATE_HZ, rate
    chunks: list[np.ndarray] = []

    def collect(wav, count, events):
        if wav and count > 0:
            chunks.append(np.ctypeslib.as_array(wav, shape=(count,)).copy())
        return 0

    callback = _SYNTH_CALLBACK(collect)
    lib.espeak_SetSynthCallback(callback)
    lib.espeak_SetVoiceByName(voice.encode())
    lib.espeak_SetParameter(_PARAM_RATE, words_per_minute, 0)
    data = text.encode() + b"\0"
    assert lib.espeak_Synth(data, len(data), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None) == 0
    lib.espeak_Synchronize()
    lib.espeak_Terminate()
    return np.concatenate(chunks).astype(np.float32) / 32768.0


def headset_clip(
    text: str, rate_hz: int, lead_s: float = 0.5, total_s: float = 10.0
) -> tuple[bytes, float]:
    """A headset-style WAV: ``lead_s`` of silence, the spoken text, silence up to ``total_s``.

    Returns the WAV and the speech duration in seconds (non-silent span of the synthesis)."""
    speech = audio.resample(espeak(text), ESPEAK_RATE_HZ, rate_hz)
    loud = np.flatnonzero(np.abs(speech) > 0.01)
    speech = speech[loud[0] : loud[-1] + 1]
    clip = np.zeros(int(total_s * rate_hz), dtype=np.float32)
    start = int(lead_s * rate_hz)
    clip[start : start + len(speech)] = speech
    return audio.encode_wav(clip, rate_hz), len(speech) / rate_hz


def word_error_rate(reference: str, hypothesis: str) -> float:
    """Word-level Levenshtein distance divided by the reference length (case/punct-free)."""
    ref = _words(reference)
    hyp = _words(hypothesis)
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        previous, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            previous, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, previous + (r != h))
    return row[-1] / max(1, len(ref))


def _words(text: str) -> list[str]:
    return re.sub(r"[^a-z0-9' ]", " ", text.lower()).split()
