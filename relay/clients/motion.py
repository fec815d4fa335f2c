"""Typed client of the motion service: text -> a library clip, the user's motion -> tokens or
a caption, the LLM's motion tokens -> SMPL-X."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator

import numpy as np

from relay.clients.base import ServiceClient, retime
from relay.errors import TurnError
from solami.avatar.rates import FPS
from solami.avatar.skeleton import POSE_DIMS, TRANS_DIMS
from solami.v1 import common_pb2, motion_pb2

# An SMPL-X clip, Y-up: poses (T, 165), trans (T, 3).
SmplxClip = tuple[np.ndarray, np.ndarray]


@dataclasses.dataclass(frozen=True)
class BodyMotion:
    """A body animation, SMPL-X Y-up at ``FPS``, where it came from and, for a library clip,
    how similar it is to the text asked for (``MotionHeader.score``, in [-1, 1])."""

    poses: np.ndarray
    trans: np.ndarray
    source: str
    score: float = 0.0


@dataclasses.dataclass(frozen=True)
class UserMotionTokens:
    """The user's motion as the SOLAMI LLM reads it."""

    body_ids: list[int]
    hand_ids: list[int]
    trans_id: int


@dataclasses.dataclass(frozen=True)
class MotionCaption:
    """What the user's motion shows: ``text`` ("" = nothing confident to say), the confidence
    ``score`` in [0, 1] and the ``source`` that answered ("library:wave", "motiongpt")."""

    text: str
    score: float
    source: str


def smplx_frames(clip: SmplxClip) -> motion_pb2.SmplxFrames:
    poses, trans = clip
    return motion_pb2.SmplxFrames(
        n_frames=len(poses), poses=poses.reshape(-1).tolist(), trans=trans.reshape(-1).tolist()
    )


class MotionClient(ServiceClient):
    service = "motion"

    async def text_to_motion(
        self, turn: common_pb2.TurnContext, text: str, seconds: float, generate: bool = False
    ) -> BodyMotion | None:
        """A library motion for ``text`` fitted to ``seconds`` (with ``generate``: a generated
        one where the service has a generator; ``source`` says which); None when it has no
        frames."""
        request = motion_pb2.TextToMotionRequest(
            turn=turn, text=text, duration_s=seconds, generate=generate
        )
        call = self._stub.TextToMotion(request, timeout=self.deadline_s)
        return await self._collect("TextToMotion", call)

    async def encode_user_motion(
        self, turn: common_pb2.TurnContext, user: SmplxClip, character: SmplxClip
    ) -> UserMotionTokens:
        """Body/hand tokens of the user's clip and the relative-transform token of the user in
        the character's frame (from the character's current pose)."""
        request = motion_pb2.EncodeUserMotionRequest(
            turn=turn, user=smplx_frames(user), character=smplx_frames(character)
        )
        with self.call("EncodeUserMotion"):
            reply = await self._stub.EncodeUserMotion(request, timeout=self.deadline_s)
        return UserMotionTokens(list(reply.body_ids), list(reply.hand_ids), reply.trans_id)

    async def caption(self, turn: common_pb2.TurnContext, user: SmplxClip) -> MotionCaption:
        """What the user's clip (Y-up) shows, for the agent methods' prompt; an empty text when
        nothing is confidently recognised (or the clip is too short)."""
        request = motion_pb2.CaptionMotionRequest(turn=turn, user=smplx_frames(user))
        with self.call("CaptionMotion"):
            reply = await self._stub.CaptionMotion(request, timeout=self.deadline_s)
        return MotionCaption(reply.caption, reply.score, reply.source)

    async def decode_motion(
        self,
        turn: common_pb2.TurnContext,
        tokens: AsyncIterator[tuple[list[int], list[int]]],
        deadline_s: float | None = None,
    ) -> BodyMotion | None:
        """SMPL-X for the (body ids, hand ids) chunks ``tokens`` yields, decoded as they come."""

        async def requests():
            yield motion_pb2.DecodeMotionRequest(turn=turn, config=motion_pb2.MotionConfig())
            async for body, hand in tokens:
                chunk = motion_pb2.MotionTokens(body_ids=body, hand_ids=hand)
                yield motion_pb2.DecodeMotionRequest(turn=turn, tokens=chunk)
            yield motion_pb2.DecodeMotionRequest(turn=turn, end=common_pb2.StreamEnd())

        call = self._stub.DecodeMotion(requests(), timeout=deadline_s or self.deadline_s)
        return await self._collect("DecodeMotion", call)

    async def _collect(self, rpc: str, call) -> BodyMotion | None:
        fps, source, score, poses, trans = float(FPS), "", 0.0, [], []
        async for event in self.stream(rpc, call):
            if event.HasField("header"):
                fps, source = event.header.fps or fps, event.header.source
                score = event.header.score
            elif event.HasField("frames"):
                frames = event.frames.frames
                poses.append(self.rows(frames.poses, POSE_DIMS, "poses"))
                trans.append(self.rows(frames.trans, TRANS_DIMS, "trans"))
                if len(poses[-1]) != len(trans[-1]):
                    raise TurnError(self.service, f"{rpc} sent poses and trans of other lengths")
        if not poses:
            return None
        poses_at_fps = retime(np.concatenate(poses), fps, FPS)
        return BodyMotion(poses_at_fps, retime(np.concatenate(trans), fps, FPS), source, score)
