"""openai-whisper (PyTorch) transcription for GPU nodes; the checkpoint comes from a path.

The checkpoint is the package's own format (``{"dims": ..., "model_state_dict": ...}``), as
``whisper.load_model`` reads it; nothing is downloaded.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from services.asr.backends.base import Segment, Word
from services.asr.settings import AsrSettings
from solami.errors import EngineUnavailable


class OpenAIWhisperTranscriber:
    """Whisper through the reference PyTorch implementation."""

    name = "openai-whisper"

    def __init__(self, settings: AsrSettings) -> None:
        self._settings = settings
        self._model = None

    def load(self) -> None:
        import whisper

        path = Path(self._settings.whisper_model).expanduser()
        if not path.is_file():
            raise EngineUnavailable(
                f"openai-whisper needs SOLAMI_ASR_WHISPER_MODEL to be a checkpoint file "
                f"(e.g. /models/whisper/base.en.pt), got {self._settings.whisper_model!r}"
            )
        self._model = whisper.load_model(str(path), device=self._settings.device)

    def transcribe(
        self, samples: np.ndarray, language: str, word_timestamps: bool
    ) -> tuple[list[Segment], str, float]:
        result = self._model.transcribe(
            samples,
            language=language or None,
            beam_size=self._settings.beam_size if self._settings.beam_size > 1 else None,
            word_timestamps=word_timestamps,
            condition_on_previous_text=False,
            fp16=self._settings.device.startswith("cuda"),
            verbose=None,
        )
        segments = [
            Segment(
                text=s["text"],
                start_s=float(s["start"]),
                end_s=float(s["end"]),
                avg_logprob=float(s["avg_logprob"]),
                no_speech_prob=float(s["no_speech_prob"]),
                words=tuple(
                    Word(
                        w["word"].strip(),
                        float(w["start"]),
                        float(w["end"]),
                        float(w["probability"]),
                    )
                    for w in s.get("words", [])
                ),
            )
            for s in result["segments"]
        ]
        return segments, result.get("language") or language, 1.0
