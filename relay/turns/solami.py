"""The end-to-end ``solami`` method, streaming.

User speech -> SpeechTokenizer units (asr) and user motion -> relative transform + body/hand
tokens (motion), concurrently -> the SOLAMI LLM streams speech units and motion tokens -> the
units are voiced in the character's cloned voice (tts Vocode) clip by clip while the motion
tokens are decoded to SMPL-X (motion DecodeMotion) as they come.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import numpy as np

from relay.clients import ServiceClients
from relay.clients.llm import MotionTokens, Reply, SpeechUnits
from relay.clients.motion import BodyMotion, SmplxClip
from relay.clients.tts import Speech, whole
from relay.errors import TurnError
from relay.sessions import Message
from relay.turns.base import Clip, Turn, TurnEvent, TurnInput, animate
from solami.avatar.rates import UNIT_RATE_HZ
from solami.avatar.skeleton import POSE_DIMS, TRANS_DIMS
from solami.v1 import common_pb2

# Units voiced per reply clip (1 s of speech).
UNITS_PER_CLIP = UNIT_RATE_HZ
# The character's pose when the headset sent none: the rest pose at the origin.
REST_POSE: SmplxClip = (np.zeros((1, POSE_DIMS), np.float32), np.zeros((1, TRANS_DIMS), np.float32))
# Frames the user's clip needs for a motion encoding (a velocity needs two).
MIN_USER_FRAMES = 2


class SolamiTurn(Turn):
    """Answers with the SOLAMI LLM's speech units and motion tokens."""

    reads_body = True

    def __init__(self, clients: ServiceClients) -> None:
        super().__init__(clients)
        self._user = Message("user")
        # The reply as far as the LLM has streamed it (replaced by its parsed whole at the end).
        self._reply = Message("character")

    async def run(self, request: TurnInput) -> AsyncIterator[TurnEvent]:
        turn = request.context
        self._user = await self._encode(request)
        if not self._user.speech_units:
            return
        session = request.session
        units: asyncio.Queue[list[int] | None] = asyncio.Queue()
        motion: asyncio.Queue[tuple[list[int], list[int]] | None] = asyncio.Queue()
        llm_task = asyncio.create_task(self._generate(request, units, motion))
        body_task = asyncio.create_task(self._decode_motion(turn, motion))
        try:
            index = 0
            body_sent = False
            async for speech in self._vocode(turn, session.character, units):
                face = await animate(self._clients, turn, speech)
                self.log.mark("first_clip")
                yield Clip(index, "", speech, face)
                index += 1
                # The body starts as soon as it is decoded (its tokens follow the speech units
                # in the reply), not after the last clip.
                if not body_sent and body_task.done():
                    body_sent = True
                    if (body := body_task.result()) is not None:
                        yield body
            await llm_task
            if not body_sent and (body := await body_task) is not None:
                yield body
        finally:
            for task in (llm_task, body_task):
                if not task.done():
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await task

    def history(self, spoken: list[Clip], finished: bool) -> list[Message]:
        """The user's tokens and the reply's, its speech units cut to what was played."""
        if not spoken and not (self._user.speech_units and finished):
            return []
        played_s = sum(clip.duration_s for clip in spoken)
        reply = self._reply
        return [
            self._user,
            Message(
                "character",
                speech_units=reply.speech_units[: round(played_s * UNIT_RATE_HZ)],
                body_ids=reply.body_ids,
                hand_ids=reply.hand_ids,
            ),
        ]

    async def _encode(self, request: TurnInput) -> Message:
        """The user's message: speech units and, when the headset sent enough motion, the
        motion tokens (a motion failure only loses them)."""
        turn = request.context
        speech = asyncio.ensure_future(self._clients.asr.tokenize(turn, request.wav))
        user = request.user_motion
        encoded = None
        if user is not None and len(user[0]) >= MIN_USER_FRAMES:
            character = request.character_pose or REST_POSE
            encoded = asyncio.ensure_future(
                self._clients.motion.encode_user_motion(turn, user, character)
            )
        try:
            message = Message("user", speech_units=await speech)
        except BaseException:
            if encoded is not None:
                encoded.cancel()
            raise
        if encoded is not None:
            try:
                tokens = await encoded
                message.body_ids, message.hand_ids = tokens.body_ids, tokens.hand_ids
                message.trans_id = tokens.trans_id
            except TurnError:
                self.log.mark("motion_encode_failed")
        self.log.mark("asr")
        return message

    async def _generate(
        self, request: TurnInput, units: asyncio.Queue, motion: asyncio.Queue
    ) -> None:
        session = request.session
        events = self._clients.llm.generate(
            request.context, session.character, session.method, session.history, self._user
        )
        try:
            async for event in events:
                if isinstance(event, SpeechUnits):
                    self.log.mark("llm_first_sentence")
                    self._reply.speech_units.extend(event.ids)
                    await units.put(event.ids)
                elif isinstance(event, MotionTokens):
                    self._reply.body_ids.extend(event.body_ids)
                    self._reply.hand_ids.extend(event.hand_ids)
                    await motion.put((event.body_ids, event.hand_ids))
                elif isinstance(event, Reply):
                    self._reply = event.message
        finally:
            await units.put(None)
            await motion.put(None)

    async def _vocode(
        self, turn: common_pb2.TurnContext, character: str, units: asyncio.Queue
    ) -> AsyncIterator[Speech]:
        """Voices the units in clips of ``UNITS_PER_CLIP``."""
        pending: list[int] = []
        done = False
        while not done:
            chunk = await units.get()
            if chunk is None:
                done = True
            else:
                pending.extend(chunk)
            while len(pending) >= UNITS_PER_CLIP or (done and pending):
                clip_units, pending = pending[:UNITS_PER_CLIP], pending[UNITS_PER_CLIP:]
                yield await whole(
                    self._marked(self._clients.tts.vocode(turn, character, clip_units))
                )

    async def _marked(self, chunks: AsyncIterator[Speech]) -> AsyncIterator[Speech]:
        async for chunk in chunks:
            if len(chunk.samples):
                self.log.mark("tts_first_audio")
            yield chunk

    async def _decode_motion(
        self, turn: common_pb2.TurnContext, motion: asyncio.Queue
    ) -> BodyMotion | None:
        async def tokens():
            while (chunk := await motion.get()) is not None:
                yield chunk

        try:
            # The stream lasts as long as the LLM's reply.
            body = await self._clients.motion.decode_motion(
                turn, tokens(), deadline_s=self._clients.llm.deadline_s
            )
        except TurnError:
            return None
        self.log.mark("motion")
        return body
