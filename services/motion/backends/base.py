"""What the motion backends implement and return.

- A ``MotionTokenizer`` (the SOLAMI VQ-VAE tokenizers with their feature pipeline, loaded when
  ``SOLAMI_MOTION_CHECKPOINT_DIR`` is set) turns a user's clip into the ids the LLM reads and
  decodes body and hand ids back into motion, whole or streamed.
- A ``TextToMotion`` source (retrieval from the clip library) gives the clip that best fits a
  text, fitted to a duration.

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
