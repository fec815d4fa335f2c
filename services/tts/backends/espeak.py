"""eSpeak NG through its C API (the library and data bundled by ``espeakng-loader``).

Synchronous mode: ``espeak_Synth`` calls back with audio buffers and the events of that audio
(words with their text positions, phonemes in IPA, each with its time in the output), so every
piece comes back with exact phoneme and word timings. The library keeps global state: one
lock serialises its use in the process.
"""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Iterator

import numpy as np

from services.tts.backends.base import Rendered, Word
from services.tts.voices import Voice
from solami.errors import EngineUnavailable
from solami.speech import Phoneme

_AUDIO_OUTPUT_SYNCHRONOUS = 2
# espeak_Initialize options: phoneme events, with IPA names.
_INITIALIZE_PHONEME_EVENTS = 0x0001
_INITIALIZE_PHONEME_IPA = 0x0002
# Milliseconds of audio per synth callback.
_BUFFER_MS = 50
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
# Adds a pause after the text, so consecutive pieces are spaced like sentences.
_ENDPAUSE = 0x1000
_EVENT_LIST_TERMINATED = 0
_EVENT_WORD = 1
_EVENT_PHONEME = 7
_PARAM_RATE = 1
_PARAM_PITCH = 3
_PARAM_RANGE = 4
# eSpeak's own defaults: words per minute, pitch (0-100), pitch range (0-100).
DEFAULT_WPM = 175
DEFAULT_PITCH = 50
DEFAULT_RANGE = 50
_FULL_SCALE = 32768.0

_LOCK = threading.Lock()


class _EventId(ctypes.Union):
    _fields_ = (("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8))


class _Event(ctypes.Structure):
    _fields_ = (
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", _EventId),
    )


_SynthCallback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event)
)


def _open_library() -> tuple[ctypes.CDLL, int]:
    try:
        import espeakng_loader
    except ImportError:
        raise EngineUnavailable("the espeakng-loader package is not installed") from None
    lib = ctypes.CDLL(espeakng_loader.get_library_path())
    lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
    lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
    lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
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
    options = _INITIALIZE_PHONEME_EVENTS | _INITIALIZE_PHONEME_IPA
    data = espeakng_loader.get_data_path().encode()
    rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, _BUFFER_MS, data, options)
    if rate <= 0:
        raise EngineUnavailable("eSpeak NG failed to initialise")
    return lib, rate


class EspeakBackend:
    """Speaks with eSpeak NG voices; exact phoneme and word timings from its events."""

    name = "espeak"
    # Synthesis takes milliseconds: a lead phrase gains nothing.
    splits_lead_phrase = False

    def __init__(self) -> None:
        self._lib: ctypes.CDLL | None = None
        self.sample_rate_hz = 22_050
        self._chunks: list[np.ndarray] = []
        self._events: list[tuple[int, int, int, int, str]] = []
        self._cancel: threading.Event | None = None
        self._callback = _SynthCallback(self._collect)

    def load(self) -> None:
        with _LOCK:
            self._lib, self.sample_rate_hz = _open_library()

    def _collect(self, wav, count, events) -> int:
        if wav and count > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(count,)).copy())
        i = 0
        while events[i].type != _EVENT_LIST_TERMINATED:
            e = events[i]
            name = e.id.string.split(b"\0")[0].decode("utf-8", "replace")
            self._events.append((e.type, e.text_position, e.length, e.audio_position, name))
            i += 1
        return 1 if self._cancel is not None and self._cancel.is_set() else 0

    def synthesize(
        self, text: str, voice: Voice, character: str, cancel: threading.Event
    ) -> Iterator[Rendered]:
        """One piece of normalised text -> its audio and timings (one ``Rendered``)."""
        if self._lib is None:
            raise EngineUnavailable("eSpeak NG is not loaded")
        lib = self._lib
        data = text.encode("utf-8") + b"\0"
        with _LOCK:
            self._chunks, self._events, self._cancel = [], [], cancel
            lib.espeak_SetSynthCallback(self._callback)
            if lib.espeak_SetVoiceByName(voice.espeak_voice.encode()) != 0:
                raise EngineUnavailable(f"eSpeak NG has no voice {voice.espeak_voice!r}")
            pitch = round(DEFAULT_PITCH + 100 * (voice.pitch - 1.0))
            lib.espeak_SetParameter(_PARAM_PITCH, min(100, max(0, pitch)), 0)
            spread = min(100, round(DEFAULT_RANGE * voice.variation))
            lib.espeak_SetParameter(_PARAM_RANGE, spread, 0)
            lib.espeak_SetParameter(_PARAM_RATE, round(DEFAULT_WPM * voice.rate), 0)
            flags = _CHARS_UTF8 | _ENDPAUSE
            lib.espeak_Synth(data, len(data), 0, _POS_CHARACTER, 0, flags, None, None)
            chunks, events = self._chunks, self._events
            self._chunks, self._events, self._cancel = [], [], None
        if cancel.is_set():
            return
        samples = (np.concatenate(chunks) if chunks else np.zeros(0, np.int16)) / _FULL_SCALE
        duration_s = len(samples) / self.sample_rate_hz
        phonemes, words = _timings(text, events, duration_s)
        yield Rendered(samples.astype(np.float32), phonemes, words)


def _timings(
    text: str, events: list[tuple[int, int, int, int, str]], duration_s: float
) -> tuple[tuple[Phoneme, ...], tuple[Word, ...]]:
    """Phonemes (each ends where the next starts; pauses merged) and words (each spans its
    phonemes) from eSpeak's events."""
    marks = [(kind, pos, length, ms / 1000, name) for kind, pos, length, ms, name in events]
    phoneme_marks = [(t, name) for kind, _, _, t, name in marks if kind == _EVENT_PHONEME]
    phonemes: list[Phoneme] = []
    for i, (start, name) in enumerate(phoneme_marks):
        end = phoneme_marks[i + 1][0] if i + 1 < len(phoneme_marks) else duration_s
        if end <= start:
            continue
        if phonemes and not name and not phonemes[-1].symbol:
            phonemes[-1] = Phoneme("", phonemes[-1].start_s, end)
        else:
            phonemes.append(Phoneme(name, start, end))
    words: list[Word] = []
    word_marks = [(pos, length, t) for kind, pos, length, t, _ in marks if kind == _EVENT_WORD]
    for i, (pos, length, start) in enumerate(word_marks):
        limit = word_marks[i + 1][2] if i + 1 < len(word_marks) else duration_s
        voiced = [p.end_s for p in phonemes if p.symbol and start <= p.start_s < limit]
        written = text[pos - 1 : pos - 1 + length].strip(".,!?;:'\"()-")
        if written:
            words.append(Word(written, start, min(max(voiced, default=limit), limit)))
    return tuple(phonemes), tuple(words)
