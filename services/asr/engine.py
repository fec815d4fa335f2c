"""The asr engine: WAV/PCM -> 16 kHz mono -> VAD trim -> transcript or speech units.

Backends implement ``Transcriber`` (faster-whisper, openai-whisper) or ``UnitTokenizer``
(SpeechTokenizer) from ``backends.base``; this module chooses them by settings. A backend
imports its model library only when it loads.
"""

from __future__ import annotations

import dataclasses
import math
import threading
import time

import numpy as np

from services.asr.backends.base import Segment, Transcriber, UnitTokenizer
from services.asr.backends.echo import EchoTranscriber
from services.asr.backends.faster_whisper import FasterWhisperTranscriber
from services.asr.backends.openai_whisper import OpenAIWhisperTranscriber
from services.asr.backends.speechtokenizer import SpeechTokenizerBackend
from services.asr.settings import AsrSettings
from services.asr.vad import SAMPLE_RATE_HZ, SpeechTrimmer, Trimmed
from solami import audio
from solami.engine import Engine
from solami.errors import EngineUnavailable

# Residual-VQ layers SpeechTokenizer has.
MAX_UNIT_LAYERS = 8
# Length of the synthetic warm-up clip, in seconds.
WARMUP_S = 1.0


@dataclasses.dataclass(frozen=True)
class Transcript:
    """Recognised speech; times are relative to the start of the submitted audio."""

    text: str
    language: str
    language_probability: float
    segments: tuple[Segment, ...]
    audio_duration_s: float
    speech_duration_s: float

    @property
    def confidence(self) -> float:
        if not self.segments:
            return 0.0
        return math.exp(sum(s.avg_logprob for s in self.segments) / len(self.segments))


@dataclasses.dataclass(frozen=True)
class Units:
    """SpeechTokenizer unit ids, one array per residual-VQ layer (layer 0 first)."""

    layers: tuple[np.ndarray, ...]
    speech_duration_s: float


def make_transcriber(settings: AsrSettings) -> Transcriber:
    """The transcription backend named by ``settings.backend``."""
    if settings.backend == "openai-whisper":
        return OpenAIWhisperTranscriber(settings)
    if settings.backend == "echo":
        return EchoTranscriber()
    return FasterWhisperTranscriber(settings)


def make_tokenizer(settings: AsrSettings) -> UnitTokenizer | None:
    """The SpeechTokenizer backend, when a model directory is configured."""
    if settings.speechtokenizer_dir is None:
        return None
    return SpeechTokenizerBackend(
        settings.speechtokenizer_dir, settings.speechtokenizer_checkpoint, settings.device
    )


class AsrEngine(Engine):
    """Speech in: decoding, VAD and the chosen backends behind one interface."""

    def __init__(
        self,
        settings: AsrSettings,
        transcriber: Transcriber | None = None,
        tokenizer: UnitTokenizer | None = None,
    ) -> None:
        self.settings = settings
        self.transcriber = transcriber or make_transcriber(settings)
        self.tokenizer = tokenizer if tokenizer is not None else make_tokenizer(settings)
        self.name = self.transcriber.name
        self._trimmer = SpeechTrimmer(settings.vad_threshold, settings.vad_pad_ms)
        # One inference at a time per model: CTranslate2/torch already use every thread.
        self._transcribe_lock = threading.Lock()
        self._tokenize_lock = threading.Lock()

    def load(self) -> None:
        self._trimmer.load()
        self.transcriber.load()
        if self.tokenizer is not None:
            self.tokenizer.load()

    def warmup(self) -> None:
        t = np.arange(int(WARMUP_S * SAMPLE_RATE_HZ)) / SAMPLE_RATE_HZ
        tone = (0.1 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
        self._trimmer.trim(tone)
        with self._transcribe_lock:
            self.transcriber.transcribe(tone, self.settings.language, False)
        if self.tokenizer is not None:
            with self._tokenize_lock:
                self.tokenizer.tokenize(tone, 1)

    def prepare(self, samples: np.ndarray, rate_hz: int) -> tuple[np.ndarray, Trimmed]:
        """Resamples to 16 kHz and trims silence; returns (all samples, the speech part)."""
        samples16 = audio.resample(samples, rate_hz, SAMPLE_RATE_HZ)
        if self.settings.vad:
            return samples16, self._trimmer.trim(samples16)
        return samples16, Trimmed(samples16, 0.0)

    def decode(self, wav: bytes) -> tuple[np.ndarray, int]:
        """Decodes and checks a whole WAV (raises InvalidInput)."""
        return audio.decode_wav(wav, self.settings.max_audio_s)

    def transcribe(
        self, samples: np.ndarray, rate_hz: int, language: str = "", word_timestamps: bool = False
    ) -> Transcript:
        """Transcribes mono float samples; silence gives an empty transcript."""
        samples16, speech = self.prepare(samples, rate_hz)
        total_s = len(samples16) / SAMPLE_RATE_HZ
        lang = language or self.settings.language
        if speech.samples.size == 0:
            return Transcript("", lang, 0.0, (), total_s, 0.0)
        with self._transcribe_lock:
            segments, lang, lang_p = self.transcriber.transcribe(
                speech.samples, lang, word_timestamps
            )
        shifted = tuple(_shift(s, speech.offset_s) for s in segments if s.text.strip())
        text = " ".join(s.text.strip() for s in shifted).strip()
        return Transcript(text, lang, lang_p, shifted, total_s, speech.duration_s)

    def tokenize(self, samples: np.ndarray, rate_hz: int, num_layers: int, vad: bool) -> Units:
        """SpeechTokenizer units of the (trimmed) speech."""
        if self.tokenizer is None:
            raise EngineUnavailable(
                "Tokenize is off: set SOLAMI_ASR_SPEECHTOKENIZER_DIR to a SpeechTokenizer "
                "model directory (config.json + checkpoint)"
            )
        samples16 = audio.resample(samples, rate_hz, SAMPLE_RATE_HZ)
        if vad and self.settings.vad:
            samples16 = self._trimmer.trim(samples16).samples
        if samples16.size == 0:
            return Units(tuple(np.zeros(0, np.int64) for _ in range(num_layers)), 0.0)
        with self._tokenize_lock:
            layers = self.tokenizer.tokenize(samples16, num_layers)
        return Units(tuple(layers), len(samples16) / SAMPLE_RATE_HZ)


def _shift(segment: Segment, offset_s: float) -> Segment:
    words = tuple(
        dataclasses.replace(w, start_s=w.start_s + offset_s, end_s=w.end_s + offset_s)
        for w in segment.words
    )
    return dataclasses.replace(
        segment, start_s=segment.start_s + offset_s, end_s=segment.end_s + offset_s, words=words
    )


def elapsed_ms(started: float) -> int:
    """Milliseconds since ``started`` (a ``time.perf_counter`` value)."""
    return int((time.perf_counter() - started) * 1000)
