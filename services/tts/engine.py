"""The tts engine: text pieces -> speech in a character's voice, and SOLAMI speech units ->
speech (Vocode), both as streams of events (header -> timings and audio -> end).

Text backends implement ``TextBackend`` (Piper, eSpeak NG, XTTS-v2) and the unit vocoder
implements ``Vocoder`` (SoundStorm + SpeechTokenizer), both from ``backends.base``; this module
chooses them by settings (the vocoder, torch code throughout, is imported only when Vocode is
configured). Each text piece is checked, normalised and split into sentences; every sentence
is synthesised as soon as it arrives, so the first audio leaves while later text is still
being written. With Piper the first sentence is spoken in two pieces (a short lead phrase
first) to cut the time to first audio.

A stream is a session object (``SpeechSession``, ``VocodeStream``): the servicer hands it each
piece as it arrives and runs only that piece's synthesis in a worker thread, so a stream
waiting for its next sentence holds no thread.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence

import numpy as np

from services.tts import text as text_rules
from services.tts.backends.base import TextBackend, Vocoder
from services.tts.backends.echo import EchoBackend
from services.tts.backends.espeak import EspeakBackend
from services.tts.backends.piper import PiperBackend
from services.tts.backends.xtts import XttsBackend
from services.tts.effects import apply_effect
from services.tts.outlet import AudioOut
from services.tts.settings import TtsSettings
from services.tts.speech import (
    VOCODE_RATE_HZ,
    Header,
    SpeechEvent,
    SpeechOptions,
    shift,
)
from services.tts.voices import VOICES, Voice, resolve
from solami.audio import MAX_SAMPLE_RATE_HZ, MIN_SAMPLE_RATE_HZ
from solami.avatar.rates import UNIT_RATE_HZ
from solami.engine import Engine
from solami.errors import EngineUnavailable, InvalidInput

WARMUP_TEXT = "Hello there, it is nice to meet you."
# What a character says to make its Vocode voice prompt when it has no prompt clip (~3 s).
PROMPT_TEXT = "Hello there! It is a lovely day, and I am really glad to talk with you."
WARMUP_CHARACTER = "Samantha"
WARMUP_UNITS = 25
VOCODE_OFF = (
    "Vocode is off: set SOLAMI_TTS_SOUNDSTORM_DIR and SOLAMI_TTS_SPEECHTOKENIZER_DIR to the "
    "SoundStorm and SpeechTokenizer model directories"
)


def make_backend(settings: TtsSettings) -> TextBackend:
    """The text backend named by ``settings.backend``."""
    if settings.backend == "espeak":
        return EspeakBackend()
    if settings.backend == "xtts":
        return XttsBackend(settings.xtts_dir, settings.voice_prompt_dir, settings.device)
    if settings.backend == "echo":
        return EchoBackend()
    return PiperBackend(settings.piper_model, settings.cpu_threads)


def make_vocoder(settings: TtsSettings) -> Vocoder | None:
    """The SoundStorm + SpeechTokenizer vocoder, when both model directories are set."""
    if not settings.vocode_enabled:
        return None
    # Imported here: the vocoder module imports torch, which Vocode alone needs.
    from services.tts.backends.vocoder import UnitVocoder

    return UnitVocoder(
        settings.soundstorm_dir,
        settings.soundstorm_checkpoint,
        settings.speechtokenizer_dir,
        settings.speechtokenizer_checkpoint,
        settings.voice_prompt_dir,
        settings.voice_prompt_s,
        settings.soundstorm_steps,
        settings.vocode_context_units,
        settings.device,
    )


class TtsEngine(Engine):
    """Speech out: the chosen text backend and, when configured, the unit vocoder."""

    def __init__(
        self,
        settings: TtsSettings,
        backend: TextBackend | None = None,
        vocoder: Vocoder | None = None,
    ) -> None:
        self.settings = settings
        self.backend = backend or make_backend(settings)
        self.vocoder = vocoder if vocoder is not None else make_vocoder(settings)
        self.name = self.backend.name

    def load(self) -> None:
        self.backend.load()
        if self.vocoder is not None:
            import torch

            torch.set_num_threads(self.settings.cpu_threads)
            self.vocoder.load()

    def warmup(self) -> None:
        session = self.open_speech(self.options(WARMUP_CHARACTER, "", 0, 0))
        for _ in session.speak(WARMUP_TEXT, threading.Event()):
            pass
        session.finish()
        if self.vocoder is not None:
            stream = self.open_vocode(self.options(WARMUP_CHARACTER, "", 0, 0, vocode=True))
            stream.add(np.arange(WARMUP_UNITS))
            stream.finish()

    def options(
        self, character: str, voice: str, sample_rate_hz: int, start_ms: int, vocode: bool = False
    ) -> SpeechOptions:
        """Checks a stream's config; the rate 0 means the native rate."""
        if vocode and self.vocoder is None:
            raise EngineUnavailable(VOCODE_OFF)
        name, preset = resolve(character, voice)
        native = VOCODE_RATE_HZ if vocode else self.backend.sample_rate_hz
        rate = sample_rate_hz or native
        if not MIN_SAMPLE_RATE_HZ <= rate <= MAX_SAMPLE_RATE_HZ:
            raise InvalidInput(
                f"sample_rate_hz {rate} is not supported: use {MIN_SAMPLE_RATE_HZ}-"
                f"{MAX_SAMPLE_RATE_HZ} Hz, or 0 for the native {native} Hz"
            )
        return SpeechOptions(name, preset.name, rate, start_ms / 1000)

    def open_speech(self, options: SpeechOptions) -> SpeechSession:
        """A Synthesize stream for ``options``."""
        return SpeechSession(self, options)

    def open_vocode(self, options: SpeechOptions, session_id: str = "") -> VocodeStream:
        """A Vocode stream for ``options``, in the voice prompt ``session_id`` picks (the same
        for every stream of a session); encodes that prompt the first time."""
        if self.vocoder is None:
            raise EngineUnavailable(VOCODE_OFF)
        return VocodeStream(self, options, session_id)

    def speak_prompt(self, voice: Voice, character: str) -> tuple[np.ndarray, int]:
        """A few seconds of ``voice`` from the text backend (a Vocode prompt)."""
        parts = [
            rendered.samples
            for sentence in text_rules.split_sentences(PROMPT_TEXT)
            for rendered in self.backend.synthesize(sentence, voice, character, threading.Event())
        ]
        rate = self.backend.sample_rate_hz
        return apply_effect(voice.effect, np.concatenate(parts), rate, 0), rate


class SpeechSession:
    """One Synthesize stream: text pieces in as they arrive, speech events out."""

    def __init__(self, engine: TtsEngine, options: SpeechOptions) -> None:
        self._backend = engine.backend
        self._settings = engine.settings
        self.options = options
        self._voice = VOICES[options.voice]
        self._out = AudioOut(
            engine.backend.sample_rate_hz,
            options.sample_rate_hz,
            options.start_s,
            engine.settings.chunk_ms,
            self._voice.effect,
        )
        self._used_chars = 0
        self._lead_words = engine.settings.lead_words if engine.backend.splits_lead_phrase else 0

    def header(self) -> Header:
        return Header(self.options.sample_rate_hz)

    def speak(self, piece: str, cancel: threading.Event) -> Iterator[SpeechEvent]:
        """Timings and audio of one text piece (blocking; runs in a worker thread)."""
        self._used_chars += len(piece)
        limit = self._settings.max_text_chars
        if self._used_chars > limit:
            raise InvalidInput(
                f"the text is over the limit of {limit} characters per stream: split the reply "
                "into several turns"
            )
        text_rules.check(piece)
        for sentence in text_rules.split_sentences(text_rules.normalize(piece)):
            parts = text_rules.lead_split(sentence, self._lead_words)
            self._lead_words = 0
            for part in parts:
                offset_s = self._out.position_s
                for rendered in self._backend.synthesize(
                    part, self._voice, self.options.character, cancel
                ):
                    if rendered.has_timings:
                        yield shift(rendered, offset_s)
                    yield from self._out.add(rendered.samples)
                if cancel.is_set():
                    return

    def finish(self) -> list[SpeechEvent]:
        """The last audio and the closing totals."""
        tail, end = self._out.finish()
        return [*tail, end]


class VocodeStream:
    """One Vocode stream: unit chunks in as they arrive, audio events out."""

    def __init__(self, engine: TtsEngine, options: SpeechOptions, session_id: str = "") -> None:
        vocoder = engine.vocoder
        self.options = options
        voice = VOICES[options.voice]
        prompt = vocoder.prompt(options.character, voice, engine.speak_prompt, session_id)
        self._session = vocoder.session(prompt)
        self._out = AudioOut(
            VOCODE_RATE_HZ, options.sample_rate_hz, options.start_s, engine.settings.chunk_ms
        )
        self._units = 0
        self._limit = int(engine.settings.max_vocode_s * UNIT_RATE_HZ)
        self._limit_s = engine.settings.max_vocode_s

    def header(self) -> Header:
        return Header(self.options.sample_rate_hz)

    def add(self, ids: Sequence[int] | np.ndarray) -> list[SpeechEvent]:
        """Audio for one chunk of units (blocking; runs in a worker thread)."""
        units = np.asarray(ids, dtype=np.int64).reshape(-1)
        self._units += units.size
        if self._units > self._limit:
            raise InvalidInput(
                f"the units are over the limit of {self._limit} per stream "
                f"({self._limit_s:.0f} s of speech)"
            )
        return list(self._out.add(self._session.add(units)))

    def finish(self) -> list[SpeechEvent]:
        """The held-back audio of the last units and the closing totals."""
        events: list[SpeechEvent] = list(self._out.add(self._session.finish()))
        tail, end = self._out.finish()
        return [*events, *tail, end]
