"""The UniTalker backend: loading a released checkpoint, windowed and streamed inference.

Checkpoints are the flat state_dicts UniTalker releases (``torch.save(model.state_dict())``),
optionally wrapped in ``{"state_dict": ...}`` or ``{"model": ...}``; a ``module.`` prefix
(DataParallel) is stripped and ``weight_g``/``weight_v`` (older torch weight norm) are renamed.
The architecture is read from the tensors, so UniTalker-B and -L load alike:
- the encoder is WavLM when ``audio_encoder.encoder.layers.0.attention.rel_attn_embed.weight``
  exists (its second dimension is the head count), otherwise wav2vec 2.0 with 64-dimensional
  heads; its layers are pre-norm exactly when the feature extractor has a LayerNorm after every
  conv (true of all released large models, false of the base ones); strides are the standard
  (5, 2, 2, 2, 2, 2, 2);
- ``decoder.learnable_style_emb.weight`` gives the identity count, ``decoder.audio_feature_map``
  the decoder width; only the conv (TCN) decoder, UniTalker's default, is supported;
- the head is ``out_head_dict.3DETF_blendshape_weight`` (one Linear, or ``head_layer.*``).
Other heads, PCA buffers and ``masked_spec_embed`` are ignored. The blendshape template is 0.

Inference follows UniTalker's demo: 16 kHz audio in 25 s windows overlapping by 5 s, each
window's frames cross-faded linearly into the previous one's. Streamed, a window runs as soon
as its audio is complete, and the frames no later window overlaps are final then.
"""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from services.face.backends.base import frame_count
from services.face.backends.unitalker_model import (
    BLENDSHAPE_HEAD,
    ETF_TO_CHANNEL,
    UniTalker,
)
from services.face.backends.wav2vec import EncoderConfig
from services.face.settings import FaceSettings
from solami import audio
from solami.avatar.face import CHANNEL_COUNT
from solami.avatar.rates import FPS
from solami.errors import EngineUnavailable
from solami.speech import Phoneme

SAMPLE_RATE_HZ = 16_000
# Shortest input the encoder's convolutions accept (its receptive field), in samples.
MIN_SAMPLES = 400
# Head width of wav2vec 2.0 models (checkpoints do not record the head count).
WAV2VEC2_HEAD_DIM = 64
# Variance floor of the zero-mean, unit-variance input normalisation.
NORMALIZE_EPS = 1e-7
_ENCODER = "audio_encoder."
_HEAD = f"out_head_dict.{BLENDSHAPE_HEAD}."


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint file, with names normalised as described above."""
    if not path.is_file():
        raise EngineUnavailable(f"UniTalker checkpoint not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises several types for unreadable files
        raise EngineUnavailable(f"cannot read UniTalker checkpoint {path}: {exc}") from None
    for wrapper in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
    if not isinstance(state, dict):
        raise EngineUnavailable(f"UniTalker checkpoint {path} is not a state_dict")
    clean = {}
    for name, tensor in state.items():
        if isinstance(tensor, torch.Tensor):
            name = name.removeprefix("module.")
            name = name.replace(".conv.weight_g", ".conv.parametrizations.weight.original0")
            name = name.replace(".conv.weight_v", ".conv.parametrizations.weight.original1")
            clean[name] = tensor
    return clean


def _indices(state: dict[str, torch.Tensor], prefix: str) -> list[int]:
    pattern = re.compile(re.escape(prefix) + r"(\d+)\.")
    return sorted({int(m.group(1)) for name in state if (m := pattern.match(name))})


def encoder_config(state: dict[str, torch.Tensor]) -> EncoderConfig:
    """The encoder shape the ``audio_encoder.*`` tensors imply."""
    projection = state.get(_ENCODER + "feature_projection.projection.weight")
    if projection is None:
        raise EngineUnavailable("the checkpoint has no audio_encoder weights")
    hidden = projection.shape[0]
    convs = [
        state[f"{_ENCODER}feature_extractor.conv_layers.{i}.conv.weight"]
        for i in _indices(state, _ENCODER + "feature_extractor.conv_layers.")
    ]
    layers = _indices(state, _ENCODER + "encoder.layers.")
    relative = state.get(_ENCODER + "encoder.layers.0.attention.rel_attn_embed.weight")
    layer_norm_convs = _ENCODER + "feature_extractor.conv_layers.1.layer_norm.weight" in state
    position = state[_ENCODER + "encoder.pos_conv_embed.conv.parametrizations.weight.original1"]
    ffn = state[_ENCODER + "encoder.layers.0.feed_forward.intermediate_dense.weight"]
    defaults = EncoderConfig()
    return EncoderConfig(
        hidden_size=hidden,
        num_layers=len(layers),
        num_heads=relative.shape[1] if relative is not None else max(1, hidden // 64),
        intermediate_size=ffn.shape[0],
        conv_dim=tuple(w.shape[0] for w in convs),
        conv_kernel=tuple(w.shape[2] for w in convs),
        conv_stride=defaults.conv_stride[: len(convs)],
        conv_bias=f"{_ENCODER}feature_extractor.conv_layers.0.conv.bias" in state,
        feat_extract_norm="layer" if layer_norm_convs else "group",
        stable_layer_norm=layer_norm_convs,
        pos_conv_kernel=position.shape[2],
        pos_conv_groups=hidden // position.shape[1],
        relative_attention=relative is not None,
        num_buckets=relative.shape[0] if relative is not None else defaults.num_buckets,
    )


def load_unitalker(path: Path, device: str = "cpu") -> UniTalker:
    """Builds UniTalker with the shape of the checkpoint at ``path`` and loads its weights."""
    state = read_state_dict(path)
    if any(name.startswith("decoder.transformer_decoder.") for name in state):
        raise EngineUnavailable("UniTalker with a transformer decoder is not supported")
    heads = sorted({n.split(".")[1] for n in state if n.startswith("out_head_dict.")})
    if f"{_HEAD}weight" in state:
        head_layers = 1
    elif head_stack := _indices(state, _HEAD + "head_layer."):
        head_layers = max(head_stack) // 2 + 1  # Linear, Tanh, ..., Linear
    else:
        raise EngineUnavailable(
            f"the checkpoint has no {BLENDSHAPE_HEAD} head (it has: {', '.join(heads) or 'none'})"
        )
    try:
        model = UniTalker(
            encoder_config(state),
            decoder_dim=state["decoder.audio_feature_map.weight"].shape[0],
            identities=state["decoder.learnable_style_emb.weight"].shape[0],
            head_layers=head_layers,
        )
    except KeyError as exc:
        raise EngineUnavailable(f"UniTalker checkpoint {path} lacks {exc.args[0]}") from None
    wanted = model.state_dict()
    missing = [name for name in wanted if name not in state]
    if missing:
        raise EngineUnavailable(
            f"UniTalker checkpoint {path} lacks {len(missing)} tensors, e.g. {missing[:3]}"
        )
    try:
        model.load_state_dict({name: state[name] for name in wanted})
    except RuntimeError as exc:
        raise EngineUnavailable(f"UniTalker checkpoint {path} does not fit: {exc}") from None
    return model.to(device).eval()


def save_random_unitalker(
    path: Path, config: EncoderConfig, decoder_dim: int = 256, identities: int = 8, seed: int = 0
) -> dict[str, torch.Tensor]:
    """Writes a randomly initialised UniTalker of this shape in the released checkpoint layout
    (tests, benchmarks); returns its state_dict."""
    torch.manual_seed(seed)
    model = UniTalker(config, decoder_dim, identities).eval()
    state = model.state_dict()
    torch.save(state, path)
    return state


class UniTalkerBackend:
    """UniTalker on the configured device; one inference at a time."""

    name = "unitalker"

    def __init__(self, settings: FaceSettings) -> None:
        self._path = settings.unitalker_weights
        self._device = settings.device
        self._threads = settings.cpu_threads
        self._style = settings.unitalker_style
        self._normalize_setting = settings.unitalker_normalize
        self.window_frames = round(settings.unitalker_window_s * FPS)
        self.step_frames = self.window_frames - round(settings.unitalker_overlap_s * FPS)
        self._model: UniTalker | None = None
        self._normalize = False
        self._style_index = torch.zeros(1, dtype=torch.long)
        self._lock = threading.Lock()

    def load(self) -> None:
        if self._path is None:
            raise EngineUnavailable("UniTalker needs SOLAMI_FACE_UNITALKER_WEIGHTS")
        if self._device == "cpu":
            torch.set_num_threads(self._threads)
        model = load_unitalker(Path(self._path), self._device)
        identities = model.decoder.learnable_style_emb.num_embeddings
        index = self._style if self._style >= 0 else identities + self._style
        if not 0 <= index < identities:
            raise EngineUnavailable(
                f"SOLAMI_FACE_UNITALKER_STYLE={self._style} is outside the checkpoint's "
                f"{identities} styles"
            )
        self._style_index = torch.tensor([index], device=self._device)
        encoder = model.audio_encoder.config
        if self._normalize_setting == "auto":
            self._normalize = encoder.feat_extract_norm == "layer"
        else:
            self._normalize = self._normalize_setting == "true"
        self._model = model

    def open(self, rate_hz: int, start_frame: int) -> UniTalkerStream:
        if self._model is None:
            raise EngineUnavailable("UniTalker is not loaded")
        return UniTalkerStream(self, rate_hz)

    def infer(self, samples16: np.ndarray, frames: int) -> np.ndarray:
        """``frames`` 30 fps frames (61 channels) for one window of 16 kHz audio."""
        x = samples16.astype(np.float32)
        if self._normalize:
            x = (x - x.mean()) / np.sqrt(x.var() + NORMALIZE_EPS)
        if len(x) < MIN_SAMPLES:
            x = np.pad(x, (0, MIN_SAMPLES - len(x)))
        with self._lock, torch.inference_mode():
            tensor = torch.from_numpy(x)[None].to(self._device)
            blendshapes = self._model(tensor, self._style_index, frames)[0].float().cpu().numpy()
        out = np.zeros((frames, CHANNEL_COUNT), dtype=np.float32)
        out[:, ETF_TO_CHANNEL] = blendshapes
        return np.clip(out, 0.0, 1.0)


class UniTalkerStream:
    """Windowed UniTalker over one stream of audio."""

    def __init__(self, backend: UniTalkerBackend, rate_hz: int) -> None:
        self._backend = backend
        self._rate_hz = rate_hz
        self._parts: list[np.ndarray] = []
        self._received = 0
        self._next_window = 0
        self._tail = np.zeros((0, CHANNEL_COUNT), dtype=np.float32)

    def add_phonemes(self, phonemes: Sequence[Phoneme]) -> None:
        """UniTalker animates from the audio alone."""

    def push(self, samples: np.ndarray) -> np.ndarray:
        self._parts.append(samples.astype(np.float32, copy=False))
        self._received += len(samples)
        ready = []
        while True:
            first = self._next_window * self._backend.step_frames
            end = first + self._backend.window_frames
            if self._sample_at(end) > self._received:
                break
            ready.append(self._run_window(first, end))
        return _join(ready)

    def finish(self) -> np.ndarray:
        total = frame_count(self._received, self._rate_hz)
        window, step = self._backend.window_frames, self._backend.step_frames
        windows = max(0, math.ceil((total - window) / step)) + 1 if total else 0
        ready = []
        while self._next_window < windows:
            first = self._next_window * step
            ready.append(self._run_window(first, min(first + window, total)))
        ready.append(self._tail)
        self._tail = self._tail[:0]
        return _join(ready)

    def _sample_at(self, frame: int) -> int:
        return round(frame * self._rate_hz / FPS)

    def _run_window(self, first: int, end: int) -> np.ndarray:
        """Runs frames ``first .. end-1``; returns those no later window overlaps."""
        samples = np.concatenate(self._parts) if self._parts else np.zeros(0, np.float32)
        self._parts = [samples]
        start, stop = self._sample_at(first), self._sample_at(end)
        segment = np.zeros(stop - start, dtype=np.float32)
        available = samples[start:stop]
        segment[: len(available)] = available
        samples16 = audio.resample(segment, self._rate_hz, SAMPLE_RATE_HZ)
        out = self._backend.infer(samples16, end - first)
        overlap = min(len(self._tail), len(out))
        fade_frames = self._backend.window_frames - self._backend.step_frames
        fade = np.linspace(1.0, 0.0, fade_frames, dtype=np.float32)[:overlap, None]
        out[:overlap] = fade * self._tail[:overlap] + (1.0 - fade) * out[:overlap]
        self._next_window += 1
        keep = self._backend.step_frames
        self._tail = out[keep:]
        return out[:keep]


def _join(blocks: list[np.ndarray]) -> np.ndarray:
    if not blocks:
        return np.zeros((0, CHANNEL_COUNT), dtype=np.float32)
    return np.concatenate(blocks, axis=0)
