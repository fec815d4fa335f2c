"""The motion engine: input checks, the tokenizers (when configured) and the clip library.

Both sit behind the interfaces of ``backends.base``. TextToMotion is served by retrieval from
the clip library with the text embedder, which ship with the service. EncodeUserMotion and
DecodeMotion need trained tokenizers from ``SOLAMI_MOTION_CHECKPOINT_DIR``; without them they
raise EngineUnavailable naming that setting. CaptionMotion is served by the nearest clip of the
same library (``captioner.py``).

A ``generator`` (``backends.base.MotionGenerator``, MotionGPT; None by default) takes over
captioning, and TextToMotion when a request asks to generate; where it produces nothing, the
library answers.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from services.motion import features
from services.motion.backends.base import (
    Caption,
    MotionCaptioner,
    MotionGenerator,
    MotionTokenizer,
    Retrieved,
    TextToMotion,
    TokenStream,
    UserTokens,
)
from services.motion.backends.checkpoints import load_tokenizers
from services.motion.backends.codec import MotionCodec
from services.motion.backends.retrieval import LibraryRetrieval, TextEmbedder
from services.motion.captioner import LibraryCaptioner
from services.motion.features import Motion
from services.motion.settings import MotionSettings
from services.motion.skeleton import BUILT_IN, Skeleton, load_smplx_skeleton
from solami.avatar.rates import FPS
from solami.avatar.skeleton import POSE_DIMS, TRANS_DIMS
from solami.engine import Engine
from solami.errors import EngineUnavailable, InvalidInput

# Fewest frames of a user clip (a velocity needs two).
MIN_USER_FRAMES = 2
# Farthest accepted position from the origin, in metres (catches centimetre/millimetre data).
MAX_POSITION_M = 100.0
# Length of the warm-up motions, in seconds.
WARMUP_S = 2.0
# MotionHeader.source of a motion the generator made.
GENERATED_SOURCE = "motiongpt"


def check_motion(
    what: str,
    poses: np.ndarray,
    trans: np.ndarray,
    n_frames: int,
    z_up: bool,
    min_frames: int,
    max_frames: int,
) -> Motion:
    """Flat ``poses``/``trans`` values of ``n_frames`` frames -> a Y-up Motion, or InvalidInput
    saying what is wrong."""
    if n_frames < min_frames:
        raise InvalidInput(f"{what}: {n_frames} frames; at least {min_frames} are needed")
    if n_frames > max_frames:
        raise InvalidInput(
            f"{what}: {n_frames} frames ({n_frames / FPS:.1f} s) is over the limit of "
            f"{max_frames} frames ({max_frames / FPS:.0f} s at {FPS} fps)"
        )
    for name, values, dims in (("poses", poses, POSE_DIMS), ("trans", trans, TRANS_DIMS)):
        if values.size != n_frames * dims:
            raise InvalidInput(
                f"{what}: {name} has {values.size} values; expected n_frames x {dims} = "
                f"{n_frames * dims} (row-major ({n_frames}, {dims}))"
            )
        if not np.isfinite(values).all():
            raise InvalidInput(f"{what}: {name} contains NaN or infinite values")
    if np.abs(trans).max(initial=0.0) > MAX_POSITION_M:
        raise InvalidInput(
            f"{what}: trans is {np.abs(trans).max():.0f} m from the origin; positions are metres"
        )
    motion = Motion(
        poses.reshape(n_frames, POSE_DIMS).astype(np.float64),
        trans.reshape(n_frames, TRANS_DIMS).astype(np.float64),
    )
    return features.convert_up_axis(motion) if z_up else motion


class DecodeSession:
    """One DecodeMotion stream: id checks, limits and the streaming decoder."""

    def __init__(
        self, decoder: TokenStream, code_num: int, max_tokens: int, lock: threading.Lock
    ) -> None:
        self._decoder = decoder
        self._code_num = code_num
        self._max_tokens = max_tokens
        self._lock = lock
        self._received = {"body": 0, "hand": 0}

    @property
    def frames_done(self) -> int:
        return self._decoder.frames_done

    def push(self, body_ids: list[int], hand_ids: list[int]) -> Motion | None:
        for kind, ids in (("body", body_ids), ("hand", hand_ids)):
            for position, value in enumerate(ids, start=self._received[kind]):
                if not 0 <= value < self._code_num:
                    raise InvalidInput(
                        f"{kind} id {value} at position {position} is out of range "
                        f"[0, {self._code_num})"
                    )
            self._received[kind] += len(ids)
            if self._received[kind] > self._max_tokens:
                raise InvalidInput(
                    f"more than {self._max_tokens} {kind} ids in one stream "
                    f"({self._max_tokens * 4 / FPS:.0f} s of motion)"
                )
        with self._lock:
            return self._decoder.push(body_ids, hand_ids)

    def finish(self) -> Motion | None:
        with self._lock:
            return self._decoder.finish()


def load_tokenizer(settings: MotionSettings, skeleton: Skeleton) -> MotionTokenizer | None:
    """The tokenizers of ``settings.checkpoint_dir`` with their feature pipeline; None when no
    checkpoint directory is set."""
    if settings.checkpoint_dir is None:
        return None
    tokenizers = load_tokenizers(settings.checkpoint_dir, settings.stats_file, settings.device)
    return MotionCodec(tokenizers, skeleton, settings.device)


class MotionEngine(Engine):
    """Tokenizers, skeleton, library and retrieval behind the motion service."""

    def __init__(self, settings: MotionSettings, embedder: TextEmbedder | None = None) -> None:
        self.settings = settings
        self.name = "library"
        self.skeleton: Skeleton = BUILT_IN
        self.codec: MotionTokenizer | None = None
        self.retrieval: TextToMotion | None = None
        self.captioner: MotionCaptioner | None = None
        # Text <-> motion by a generative model (MotionGPT), set where one is configured.
        self.generator: MotionGenerator | None = None
        self._embedder = embedder or TextEmbedder(
            Path(settings.embedding_model).expanduser() if settings.embedding_model else None,
            settings.device,
        )
        # One inference at a time: torch already uses every thread.
        self._codec_lock = threading.Lock()

    @property
    def max_frames(self) -> int:
        return int(self.settings.max_clip_s * FPS)

    def load(self) -> None:
        import torch

        settings = self.settings
        torch.set_num_threads(settings.cpu_threads)
        if settings.skeleton_model is not None:
            self.skeleton = load_smplx_skeleton(settings.skeleton_model)
        self.retrieval = LibraryRetrieval.load(
            settings.library_dir, self.skeleton, self._embedder, settings.blend_s
        )
        self.captioner = LibraryCaptioner.load(
            settings.library_dir, self.skeleton, settings.caption_floor
        )
        self.codec = load_tokenizer(settings, self.skeleton)
        if self.codec is not None:
            self.name = "vqvae+library"
        if settings.motiongpt_dir is not None:
            from services.motion.backends.motiongpt import MotionGpt

            self.generator = MotionGpt.load(
                settings.motiongpt_dir, settings.device, skeleton=self.skeleton
            )
            self.name += "+motiongpt"

    def warmup(self) -> None:
        clip = self.text_to_motion("wave hello", WARMUP_S, generate=self.generator is not None)
        self.caption(clip.motion)
        if self.codec is not None:
            tokens = self.encode_user_motion(clip.motion, None)
            session = self.decode_session()
            session.push(tokens.body_ids.tolist(), tokens.hand_ids.tolist())
            session.finish()

    def _codec(self) -> MotionTokenizer:
        if self.codec is None:
            raise EngineUnavailable(
                "motion tokenizers are not loaded: set SOLAMI_MOTION_CHECKPOINT_DIR to a "
                "directory with body.pth, hand.pth, transform.pth and the statistics npz "
                "(python -m services.motion.train writes one)"
            )
        return self.codec

    def check_user(self, poses: np.ndarray, trans: np.ndarray, n_frames: int, z_up: bool) -> Motion:
        """The user's clip as a Y-up Motion (InvalidInput when malformed)."""
        return check_motion("user", poses, trans, n_frames, z_up, MIN_USER_FRAMES, self.max_frames)

    def check_character(
        self, poses: np.ndarray, trans: np.ndarray, n_frames: int, z_up: bool
    ) -> Motion | None:
        """The character's pose (one frame), or None when none was sent."""
        if n_frames == 0 and poses.size == 0 and trans.size == 0:
            return None
        if n_frames != 1:
            raise InvalidInput(f"character: expected one frame (the current pose), got {n_frames}")
        return check_motion("character", poses, trans, n_frames, z_up, 1, 1)

    def encode_user_motion(self, user: Motion, character: Motion | None) -> UserTokens:
        """The user's turn ids: relative transform id, body and hand ids (one per 4 frames)."""
        codec = self._codec()
        with self._codec_lock:
            return codec.encode_user(user, character)

    def decode_session(self) -> DecodeSession:
        """A new streaming decode (ids checked against the tokenizers' code book)."""
        codec = self._codec()
        return DecodeSession(
            codec.stream(), codec.code_num, self.settings.max_decode_tokens, self._codec_lock
        )

    def check_caption_user(
        self, poses: np.ndarray, trans: np.ndarray, n_frames: int, z_up: bool
    ) -> Motion:
        """The user's clip to caption as a Y-up Motion: any length up to the limit (a short one
        gets an empty caption), InvalidInput when malformed."""
        return check_motion("user", poses, trans, n_frames, z_up, 0, self.max_frames)

    def caption(self, user: Motion) -> Caption:
        """What the user's clip shows: "" with score 0 for a clip under MIN_USER_FRAMES, the
        generator's caption where one is set, else the nearest library clip's."""
        if user.n_frames < MIN_USER_FRAMES:
            return Caption("", 0.0, "")
        if self.generator is not None:
            return self.generator.caption(user)
        if self.captioner is None:
            raise EngineUnavailable("the motion library is not loaded")
        return self.captioner.caption(user)

    def text_to_motion(self, text: str, seconds: float, generate: bool = False) -> Retrieved:
        """The library clip closest to ``text``, fitted to ``seconds`` (0: its own length); with
        ``generate`` and a generator set, the generator's motion where it makes one."""
        text = text.strip()
        if not text:
            raise InvalidInput("text is empty; describe a motion, e.g. 'wave hello'")
        if len(text) > self.settings.max_text_chars:
            raise InvalidInput(
                f"text has {len(text)} characters; the limit is {self.settings.max_text_chars}"
            )
        if not (np.isfinite(seconds) and 0 <= seconds <= self.settings.max_clip_s):
            raise InvalidInput(
                f"duration_s must be between 0 and {self.settings.max_clip_s:g}, got {seconds}"
            )
        if generate and self.generator is not None:
            motion = self.generator.generate(text, seconds)
            if motion is not None:
                return Retrieved(GENERATED_SOURCE, 0.0, motion)
        if self.retrieval is None:
            raise EngineUnavailable("the motion library is not loaded")
        return self.retrieval.retrieve(text, seconds)
