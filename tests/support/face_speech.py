"""eSpeak NG speech with its phoneme events (IPA, start times), as the tts service sends them."""

from __future__ import annotations

import ctypes

import numpy as np

from services.face.engine import Phoneme
from tests.support.speech import ESPEAK_RATE_HZ

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_PHONEME_EVENTS = 0x0001
_INITIALIZE_PHONEME_IPA = 0x0002
_EVENT_LIST_TERMINATED = 0
_EVENT_PHONEME = 7
_EVENT_MSG_TERMINATED = 6
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_PARAM_RATE = 1


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", _EventId),
    ]


_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event)
)


def espeak_with_phonemes(
    text: str, voice: str = "en-us", words_per_minute: int = 165
) -> tuple[np.ndarray, list[Phoneme]]:
    """Speaks ``text``: mono float32 at 22.05 kHz and its phonemes (IPA) with times."""
    import espeakng_loader

    lib = ctypes.CDLL(espeakng_loader.get_library_path())
    lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
    lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
    lib.espeak_Synth.argtypes = [
        ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
        ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p,
    ]  # fmt: skip
    options = _INITIALIZE_PHONEME_EVENTS | _INITIALIZE_PHONEME_IPA
    rate = lib.espeak_Initialize(
        _AUDIO_OUTPUT_SYNCHRONOUS, 0, espeakng_loader.get_data_path().encode(), options
    )
    assert rate == ESPEAK_RATE_HZ, rate
    chunks: list[np.ndarray] = []
    starts: list[tuple[str, float]] = []
    ends: list[float] = []

    def collect(wav, count, events):
        if wav and count > 0:
            chunks.append(np.ctypeslib.as_array(wav, shape=(count,)).copy())
        i = 0
        while events[i].type != _EVENT_LIST_TERMINATED:
            event = events[i]
            if event.type == _EVENT_PHONEME:
                symbol = event.id.string.decode("utf-8", errors="replace")
                starts.append((symbol, event.audio_position / 1000))
            elif event.type == _EVENT_MSG_TERMINATED:
                ends.append(event.audio_position / 1000)
            i += 1
        return 0

    callback = _CALLBACK(collect)
    lib.espeak_SetSynthCallback(callback)
    lib.espeak_SetVoiceByName(voice.encode())
    lib.espeak_SetParameter(_PARAM_RATE, words_per_minute, 0)
    data = text.encode() + b"\0"
    assert lib.espeak_Synth(data, len(data), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None) == 0
    lib.espeak_Synchronize()
    lib.espeak_Terminate()
    samples = np.concatenate(chunks).astype(np.float32) / 32768.0
    total_s = len(samples) / ESPEAK_RATE_HZ
    bounds = [start for _, start in starts[1:]] + [ends[-1] if ends else total_s]
    phonemes = [
        Phoneme(symbol, start, end)
        for (symbol, start), end in zip(starts, bounds, strict=True)
        if end > start
    ]
    return samples, phonemes
