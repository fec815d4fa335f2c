"""Coqui XTTS-v2 (``coqui-tts``): streaming voice cloning from each character's reference clip.

GPU image only: ``coqui-tts`` imports torchaudio, which PyPI offers only with CUDA torch, so
this backend cannot be imported in the CPU environment; ``tests/xtts`` runs it where coqui-tts
is installed, on a tiny XTTS-v2 with random weights saved in the released layout. The model
directory is the released XTTS-v2 layout (``config.json``, ``model.pth``, ``vocab.json``,
``speakers_xtts.pth``), read from a path (a PVC in Kubernetes), never from a hub.

Each character's voice comes from ``<voice_prompt_dir>/<Character>.wav`` (a few seconds of
clean speech), turned into conditioning latents once and cached; a character without a clip
uses one of the model's built-in speakers. XTTS gives no alignment: the phoneme and word
timings of each sentence are eSpeak NG's for the same text, stretched to the audio XTTS
produced, and are sent after that sentence's audio.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from services.tts.backends.base import Rendered
from services.tts.backends.espeak import EspeakBackend
from services.tts.voices import Voice
from solami import audio
from solami.errors import EngineUnavailable, InvalidInput

# XTTS output rate in Hz (config.audio.output_sample_rate of the released model).
OUTPUT_RATE_HZ = 24_000
# GPT tokens per streamed audio chunk (about 0.2 s of speech each at 21.5 tokens/s).
STREAM_CHUNK_TOKENS = 20
LANGUAGE = "en"
# Longest reference clip file read, in seconds (XTTS uses its first ``max_ref_len`` seconds).
MAX_REFERENCE_FILE_S = 120
# Built-in XTTS-v2 speakers for characters without a reference clip, by voice preset.
BUILT_IN_SPEAKERS = {
    "neutral": "Andrew Chipper",
    "bright": "Ana Florence",
    "deep": "Damien Black",
    "broad": "Craig Gutsy",
    "young": "Royston Min",
    "kitten": "Daisy Studious",
    "robot": "Viktor Eka",
}


class XttsBackend:
    """Streams each sentence's audio as XTTS generates it (chunks of ~0.2 s)."""

    name = "xtts"
    # XTTS streams within a sentence already.
    splits_lead_phrase = False

    def __init__(self, model_dir: Path, voice_prompt_dir: Path | None, device: str) -> None:
        self._model_dir = Path(model_dir)
        self._prompt_dir = voice_prompt_dir
        self._device = device
        self._model = None
        self._config = None
        self._latents: dict[str, tuple[object, object]] = {}
        self._lock = threading.Lock()
        self._timer = EspeakBackend()
        self.sample_rate_hz = OUTPUT_RATE_HZ

    def load(self) -> None:
        try:
            from TTS.tts.configs.xtts_config import XttsConfig
            from TTS.tts.models.xtts import Xtts
        except ImportError as exc:
            raise EngineUnavailable(
                f"XTTS needs the coqui-tts package (GPU image): {exc}"
            ) from None
        config_path = self._model_dir / "config.json"
        if not config_path.is_file():
            raise EngineUnavailable(f"XTTS config missing: {config_path}")
        config = XttsConfig()
        config.load_json(str(config_path))
        model = Xtts(config)
        model.load_checkpoint(config, checkpoint_dir=str(self._model_dir), eval=True)
        self._model = model.to(self._device)
        self._config = config
        self.sample_rate_hz = int(config.audio.output_sample_rate)
        self._timer.load()

    def _conditioning(self, character: str, voice: Voice) -> tuple[object, object]:
        """(GPT conditioning latent, speaker embedding) of a character, computed once."""
        key = character or voice.name
        if key in self._latents:
            return self._latents[key]
        clip = self._prompt_dir / f"{character}.wav" if self._prompt_dir and character else None
        if clip is not None and clip.is_file():
            latents = self._clip_latents(clip)
        else:
            speakers = getattr(self._model.speaker_manager, "speakers", None) or {}
            speaker = speakers.get(BUILT_IN_SPEAKERS.get(voice.name, ""))
            if speaker is None:
                raise EngineUnavailable(
                    f"no XTTS reference clip for {key!r}: add {key}.wav to the voice prompt "
                    "directory (SOLAMI_TTS_VOICE_PROMPT_DIR)"
                )
            gpt_latent, speaker_embedding = speaker.values()
            latents = (gpt_latent, speaker_embedding)
        self._latents[key] = latents
        return latents

    def _clip_latents(self, clip: Path) -> tuple[object, object]:
        """Conditioning from a reference clip, as ``Xtts.get_conditioning_latents`` computes it
        but decoded by us (any WAV the stack accepts; no torchaudio/FFmpeg file loading)."""
        import torch

        try:
            samples, rate = audio.decode_wav(clip.read_bytes(), MAX_REFERENCE_FILE_S)
        except InvalidInput as exc:
            raise EngineUnavailable(f"voice prompt {clip.name}: {exc}") from None
        config = self._config
        samples = samples[: int(rate * config.max_ref_len)]
        wav = torch.from_numpy(np.clip(samples, -1.0, 1.0))[None, :].to(self._device)
        speaker_embedding = self._model.get_speaker_embedding(wav, rate)
        gpt_latent = self._model.get_gpt_cond_latents(
            wav, rate, length=config.gpt_cond_len, chunk_length=config.gpt_cond_chunk_len
        )
        return gpt_latent, speaker_embedding

    def synthesize(
        self, text: str, voice: Voice, character: str, cancel: threading.Event
    ) -> Iterator[Rendered]:
        """Audio chunks as XTTS generates them, then the stretched eSpeak timings."""
        if self._model is None:
            raise EngineUnavailable("XTTS is not loaded")
        produced = 0
        with self._lock:
            gpt_latent, speaker_embedding = self._conditioning(character, voice)
            stream = self._model.inference_stream(
                text,
                LANGUAGE,
                gpt_latent,
                speaker_embedding,
                stream_chunk_size=STREAM_CHUNK_TOKENS,
                speed=voice.rate,
                enable_text_splitting=False,
            )
            for chunk in stream:
                if cancel.is_set():
                    return
                samples = chunk.detach().float().cpu().numpy().reshape(-1).astype(np.float32)
                produced += samples.size
                yield Rendered(samples)
        reference = next(iter(self._timer.synthesize(text, voice, character, cancel)), None)
        if reference is None or produced == 0 or reference.samples.size == 0:
            return
        produced_s = produced / self.sample_rate_hz
        scale = produced_s / (reference.samples.size / self._timer.sample_rate_hz)
        yield reference.stretched(scale)
