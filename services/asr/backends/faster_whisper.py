"""faster-whisper (CTranslate2) transcription: the CPU default, int8, packaged models."""

from __future__ import annotations

import numpy as np

from services.asr.backends.base import Segment, Word
from services.asr.models import resolve_whisper_model
from services.asr.settings import AsrSettings
from solami.errors import InvalidInput


class FasterWhisperTranscriber:
    """Whisper through CTranslate2; one model, called under the engine's lock."""

    name = "faster-whisper"

    def __init__(self, settings: AsrSettings) -> None:
        self._settings = settings
        self._model = None

    def load(self) -> None:
        from faster_whisper import WhisperModel

        path = resolve_whisper_model(self._settings.whisper_model, self._settings.cache_dir)
        self._model = WhisperModel(
            str(path),
            device=self._settings.device,
            compute_type=self._settings.compute_type,
            cpu_threads=self._settings.cpu_threads,
            num_workers=1,
        )

    def transcribe(
        self, samples: np.ndarray, language: str, word_timestamps: bool
    ) -> tuple[list[Segment], str, float]:
        model = self._model
        if not model.model.is_multilingual and language not in ("", "en"):
            raise InvalidInput(
                f"language {language!r} is not supported by the English-only Whisper model; "
                "use 'en' or a multilingual model (SOLAMI_ASR_WHISPER_MODEL=base)"
            )
        segments, info = model.transcribe(
            samples,
            language=language or None,
            beam_size=self._settings.beam_size,
            word_timestamps=word_timestamps,
            condition_on_previous_text=False,
            vad_filter=False,
        )
        result = [
            Segment(
                text=s.text,
                start_s=s.start,
                end_s=s.end,
                avg_logprob=s.avg_logprob,
                no_speech_prob=s.no_speech_prob,
                words=tuple(Word(w.word.strip(), w.start, w.end, w.probability) for w in s.words)
                if s.words
                else (),
            )
            for s in segments
        ]
        return result, info.language, float(info.language_probability)
