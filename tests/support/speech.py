"""Real speech for tests: eSpeak NG (bundled by espeakng-loader) through its C API."""

from __future__ import annotations

import re

import numpy as np

from solami import audio

ESPEAK_RATE_HZ = 22_050
_BACKEND = None


def espeak_with_timings(
    text: str, voice: str = "en-us", words_per_minute: int = 165
) -> tuple[np.ndarray, tuple]:
    """Speaks ``text`` with the tts service's eSpeak NG backend: mono float32 at 22.05 kHz and
    its phoneme timings (IPA, seconds)."""
    import dataclasses
    import threading

    from services.tts.backends.espeak import DEFAULT_WPM, EspeakBackend
    from services.tts.voices import resolve

    global _BACKEND
    if _BACKEND is None:
        _BACKEND = EspeakBackend()
        _BACKEND.load()
    assert _BACKEND.sample_rate_hz == ESPEAK_RATE_HZ
    neutral = resolve("User")[1]
    spec = dataclasses.replace(
        neutral, espeak_voice=voice, pitch=1.0, variation=1.0, rate=words_per_minute / DEFAULT_WPM
    )
    rendered = list(_BACKEND.synthesize(text, spec, "User", threading.Event()))
    samples = np.concatenate([r.samples for r in rendered]).astype(np.float32)
    phonemes = tuple(p for r in rendered for p in r.phonemes)
    return samples, phonemes


def espeak(text: str, voice: str = "en-us", words_per_minute: int = 165) -> np.ndarray:
    """Speaks ``text``; returns mono float32 at 22.05 kHz."""
    return espeak_with_timings(text, voice, words_per_minute)[0]


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
