"""SMPL-X clips <-> SOLAMI motion token ids through the tokenizers, one-shot and streamed.

Encoding: a clip is placed (facing +Z at the origin), turned into features, normalised with the
checkpoint's statistics, padded to a multiple of 4 frames by repeating its last frame, and
split into the body (0:135) and hand (135:315) tokenizers. Decoding is the reverse; the
streaming decoder re-decodes each new window with enough context on both sides (the decoder's
receptive field) that its frames equal those of decoding the whole sequence at once.
"""

from __future__ import annotations

import numpy as np
import torch

from services.motion import features
from services.motion.backends.base import UserTokens
from services.motion.backends.checkpoints import Tokenizers
from services.motion.features import Motion
from services.motion.skeleton import Skeleton
from solami.avatar.features import BODY_FEATURE_DIMS
from solami.avatar.rates import FRAMES_PER_TOKEN
from solami.avatar.skeleton import POSE_DIMS


def pad_to_tokens(feats: np.ndarray) -> np.ndarray:
    """Repeats the last frame so that the frame count is a (non-zero) multiple of 4."""
    frames = max(FRAMES_PER_TOKEN, -(-len(feats) // FRAMES_PER_TOKEN) * FRAMES_PER_TOKEN)
    return np.concatenate([feats, np.repeat(feats[-1:], frames - len(feats), axis=0)])


def rest_character(skeleton: Skeleton) -> Motion:
    """A character in the rest pose standing at the origin, facing +Z."""
    return Motion(np.zeros((1, POSE_DIMS)), np.array([[0.0, skeleton.floor_to_pelvis_m, 0.0]]))


class MotionCodec:
    """The tokenizers with the feature pipeline around them (thread-safe: no state); the
    ``MotionTokenizer`` of the engine."""

    def __init__(self, tokenizers: Tokenizers, skeleton: Skeleton, device: str = "cpu") -> None:
        self.tokenizers = tokenizers
        self.skeleton = skeleton
        self.device = device
        stats = tokenizers.stats
        self._mean = stats.motion_mean
        self._std = stats.motion_std
        self.code_num = tokenizers.body.config.code_num
        self.transform_code_num = tokenizers.transform.config.code_num
        self.context_tokens = max(
            tokenizers.body.config.decoder_context_tokens(),
            tokenizers.hand.config.decoder_context_tokens(),
        )

    def _tensor(self, array: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(np.asarray(array, dtype=np.float32), device=self.device)

    def encode_features(self, feats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(B, T, 315) features, T a multiple of 4 -> body and hand ids, each (B, T / 4)."""
        x = self._tensor((feats - self._mean) / self._std)
        body = self.tokenizers.body.encode(x[..., :BODY_FEATURE_DIMS])
        hand = self.tokenizers.hand.encode(x[..., BODY_FEATURE_DIMS:])
        return body.cpu().numpy(), hand.cpu().numpy()

    def decode_features(self, body_ids: np.ndarray, hand_ids: np.ndarray) -> np.ndarray:
        """(B, N) body and hand ids -> (B, 4 N, 315) features."""
        body = self.tokenizers.body.decode(torch.as_tensor(body_ids, device=self.device))
        hand = self.tokenizers.hand.decode(torch.as_tensor(hand_ids, device=self.device))
        x = torch.cat([body, hand], dim=-1).cpu().numpy().astype(np.float64)
        return x * self._std + self._mean

    def encode_transform(self, user: Motion, character: Motion) -> int:
        """The relative transform id of the user with respect to the character."""
        stats = self.tokenizers.stats
        relative = features.relative_transform(user, character, self.skeleton)
        x = self._tensor((relative - stats.transform_mean) / stats.transform_std)[None]
        return int(self.tokenizers.transform.encode(x)[0])

    def encode_user(self, user: Motion, character: Motion | None = None) -> UserTokens:
        """A user clip (>= 2 frames) and the character's pose -> the user turn's ids."""
        feats, _ = features.features_of(user, self.skeleton)
        body, hand = self.encode_features(pad_to_tokens(feats)[None])
        trans_id = self.encode_transform(user, character or rest_character(self.skeleton))
        return UserTokens(trans_id, body[0], hand[0])

    def decode(self, body_ids: np.ndarray, hand_ids: np.ndarray) -> Motion:
        """One sequence of ids -> a canonical clip of 4 frames per id."""
        ids = np.asarray(body_ids, dtype=np.int64)[None], np.asarray(hand_ids, dtype=np.int64)[None]
        motion, _ = features.from_features(self.decode_features(*ids)[0])
        return motion

    def stream(self) -> StreamDecoder:
        return StreamDecoder(self)


class StreamDecoder:
    """Decodes ids as they arrive; the frames equal a one-shot decode of all the ids.

    Body and hand ids pair up by position and may arrive in separate chunks; a frame is
    produced once ``context_tokens`` pairs after it are known (or at ``finish``).
    """

    def __init__(self, codec: MotionCodec) -> None:
        self._codec = codec
        self._body: list[int] = []
        self._hand: list[int] = []
        self._done = 0
        self._xz = np.zeros(2)

    @property
    def pairs(self) -> int:
        return min(len(self._body), len(self._hand))

    @property
    def frames_done(self) -> int:
        return self._done * FRAMES_PER_TOKEN

    def push(self, body_ids: list[int], hand_ids: list[int]) -> Motion | None:
        """Adds ids; returns the frames that became final, if any."""
        self._body.extend(body_ids)
        self._hand.extend(hand_ids)
        ready = self.pairs - self._codec.context_tokens
        return self._emit(ready) if ready > self._done else None

    def finish(self) -> Motion | None:
        """Decodes everything left (unpaired trailing ids are dropped)."""
        return self._emit(self.pairs) if self.pairs > self._done else None

    def _emit(self, upto: int) -> Motion:
        context = self._codec.context_tokens
        start = max(0, self._done - context)
        stop = min(self.pairs, upto + context)
        window = (np.array([self._body[start:stop]]), np.array([self._hand[start:stop]]))
        feats = self._codec.decode_features(*window)[0]
        lo, hi = (self._done - start) * FRAMES_PER_TOKEN, (upto - start) * FRAMES_PER_TOKEN
        motion, self._xz = features.from_features(feats[lo:hi], self._xz)
        self._done = upto
        return motion
