"""What the motion backends implement and return.

- A ``MotionTokenizer`` (the SOLAMI VQ-VAE tokenizers with their feature pipeline, loaded when
  ``SOLAMI_MOTION_CHECKPOINT_DIR`` is set) turns a user's clip into the ids the LLM reads and
  decodes body and hand ids back into motion, whole or streamed.
- A ``TextToMotion`` source (retrieval from the clip library) gives the clip that best fits a
  text, fitted to a duration.
- A ``MotionCaptioner`` says in words what a user's clip shows (``captioner.LibraryCaptioner``:
  the nearest library clip, no download).
- A ``MotionGenerator`` (MotionGPT on GPU nodes; none by default) captions motion and generates
  motion from text; the engine prefers it to the library where it is set.

Motions are Y-up SMPL-X clips at 30 fps, 4 frames per body or hand id.
"""

from __future__ import annotations

import dataclasses
from typing import Protocol

import numpy as np

from services.motion.features import Motion


@dataclasses.dataclass(frozen=True)
class UserTokens:
    """What the SOLAMI LLM reads for a user turn: one transform id, body and hand ids."""

    trans_id: int
    body_ids: np.ndarray
    hand_ids: np.ndarray


@dataclasses.dataclass(frozen=True)
class Retrieved:
    """A library clip fitted to a request."""

    name: str
    score: float
    motion: Motion


@dataclasses.dataclass(frozen=True)
class Caption:
    """What a user's clip shows: ``text`` ("" = nothing confident to say), the confidence
    ``score`` in [0, 1] and the ``source`` that answered ("library:wave", "motiongpt")."""

    text: str
    score: float
    source: str


class TokenStream(Protocol):
    """One streamed decode: ids in as they arrive, the frames that became final out."""

    @property
    def frames_done(self) -> int: ...

    def push(self, body_ids: list[int], hand_ids: list[int]) -> Motion | None:
        """Adds ids (body and hand pair up by position); the frames now final, if any."""
        ...

    def finish(self) -> Motion | None:
        """No more ids: the remaining frames, if any."""
        ...


class MotionTokenizer(Protocol):
    # Ids are in [0, code_num), for body and hand alike.
    code_num: int

    def encode_user(self, user: Motion, character: Motion | None = None) -> UserTokens:
        """A user clip (>= 2 frames) and the character's pose -> the user turn's ids."""
        ...

    def decode(self, body_ids: np.ndarray, hand_ids: np.ndarray) -> Motion:
        """One sequence of ids -> a clip of 4 frames per id."""
        ...

    def stream(self) -> TokenStream: ...


class TextToMotion(Protocol):
    def retrieve(self, text: str, seconds: float) -> Retrieved:
        """The clip that best fits ``text``, fitted to ``seconds`` (0: its own length)."""
        ...


class MotionCaptioner(Protocol):
    def caption(self, motion: Motion) -> Caption:
        """What ``motion`` (a Y-up clip of >= 2 frames) shows, or an empty caption."""
        ...


class MotionGenerator(Protocol):
    """Motion <-> text by a generative model (MotionGPT)."""

    def caption(self, motion: Motion) -> Caption:
        """What ``motion`` shows (motion -> text), or an empty caption."""
        ...

    def generate(self, text: str, seconds: float) -> Motion | None:
        """A motion for ``text`` of about ``seconds`` (0: its own length); None when the model
        produced none (the engine then retrieves)."""
        ...
