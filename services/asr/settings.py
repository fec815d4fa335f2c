"""Settings of the asr service (``SOLAMI_ASR_*``)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from solami.registry import SERVICES
from solami.settings import ServiceSettings, SettingsError

INFO = SERVICES["asr"]
TRANSCRIBE_BACKENDS = ("faster-whisper", "openai-whisper", "echo")
DEFAULT_CACHE_DIR = Path("~/.cache/solami").expanduser()


@dataclasses.dataclass(frozen=True)
class AsrSettings(ServiceSettings):
    """How the asr service transcribes and tokenizes."""

    port: int = INFO.port
    metrics_port: int = INFO.metrics_port
    # Transcription backend: "faster-whisper" (CPU default) or "openai-whisper" (GPU nodes);
    # "echo" is a benchmarking profile (a fixed transcript at once) that must never serve users.
    backend: str = "faster-whisper"
    # Whisper model: "tiny.en" or "base" (packaged, faster-whisper), or a model directory/file.
    whisper_model: str = "tiny.en"
    # Directory where packaged model parts are assembled once (base).
    cache_dir: Path = DEFAULT_CACHE_DIR
    # CTranslate2 compute type for faster-whisper ("int8" on CPU, "float16" on GPU).
    compute_type: str = "int8"
    # Torch/CTranslate2 device ("cpu", "cuda").
    device: str = "cpu"
    # CPU threads for inference.
    cpu_threads: int = 2
    # Beam width; 1 = greedy (fastest).
    beam_size: int = 1
    # Language hint when the request gives none; empty = detect.
    language: str = "en"
    # Longest accepted audio, in seconds.
    max_audio_s: float = 60.0
    # Trim leading/trailing silence with silero-vad before recognition.
    vad: bool = True
    # Speech probability above which a 32 ms window counts as speech.
    vad_threshold: float = 0.5
    # Silence kept around detected speech, in milliseconds.
    vad_pad_ms: int = 50
    # SpeechTokenizer directory holding config.json and the checkpoint (empty = Tokenize off).
    speechtokenizer_dir: Path | None = None
    # Checkpoint file name inside speechtokenizer_dir.
    speechtokenizer_checkpoint: str = "SpeechTokenizer.pt"

    def validate(self, prefix: str = "") -> None:
        super().validate(prefix)
        if self.backend not in TRANSCRIBE_BACKENDS:
            raise SettingsError(
                f"{prefix}BACKEND must be one of {', '.join(TRANSCRIBE_BACKENDS)}, "
                f"got {self.backend!r}"
            )
        if self.cpu_threads < 1:
            raise SettingsError(f"{prefix}CPU_THREADS must be >= 1, got {self.cpu_threads}")
        if self.beam_size < 1:
            raise SettingsError(f"{prefix}BEAM_SIZE must be >= 1, got {self.beam_size}")
        if self.max_audio_s <= 0:
            raise SettingsError(f"{prefix}MAX_AUDIO_S must be > 0, got {self.max_audio_s}")
        if not 0.0 < self.vad_threshold < 1.0:
            raise SettingsError(
                f"{prefix}VAD_THRESHOLD must be between 0 and 1, got {self.vad_threshold}"
            )
