"""The end-to-end ``solami`` method, streaming.

User speech -> SpeechTokenizer units (asr) and user motion -> relative transform + body/hand
tokens (motion), concurrently -> the SOLAMI LLM streams speech units and motion tokens -> the
reply's units are voiced in the character's cloned voice in ONE tts Vocode stream (fed as the
LLM generates them, so every chunk is rendered with the context of the one before and
cross-faded into it, as when the original SOLAMI vocodes the reply whole), whose audio is cut into
headset clips of about a second, while the motion tokens are decoded to SMPL-X (motion
DecodeMotion) as they come.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import numpy as np

from relay.clients import ServiceClients
from relay.clients.llm import MotionTokens, Reply, SpeechUnits
from relay.clients.motion import BodyMotion, SmplxClip
from relay.clients.tts import Speech
from relay.errors import TurnError
from relay.sessions import Message
from relay.turns.base import Clip, Turn, TurnEvent, TurnInput, animate
from solami.avatar.rates import UNIT_RATE_HZ
from solami.avatar.skeleton import POSE_DIMS, TRANS_DIMS
from solami.v1 import common_pb2

# Units sent into the Vocode stream at a time (1 s of speech): the service renders each chunk
# as it arrives, so this is also the rendering step.
UNITS_PER_CHUNK = UNIT_RATE_HZ
# Length of a reply clip (the headset plays whole WAVs), and the shortest clip cut while more
# audio follows: the service holds back the last units of each chunk for its cross-fade, so the
# first chunk's audio is a little under a second and is sent as it is rather than waiting for
# the next chunk.
CLIP_S = 1.0
MIN_CLIP_S = 0.8
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
            # Closed at once when the turn is (barge-in), which cancels the Vocode stream.
            async with contextlib.aclosing(self._vocode(turn, session.character, units)) as clips:
                async for speech in clips:
                    face = await animate(self._clients, turn, speech)
                    self.log.mark("first_clip")
                    yield Clip(index, "", speech, face)
                    index += 1
                    # The body starts as soon as it is decoded (its tokens follow the speech
                    # units in the reply), not after the last clip.
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
        """The reply's units voiced in one Vocode stream, its audio cut into clips.

        The stream is read by a task of its own, so rendering runs ahead of the headset's
        pace; closing this iterator (barge-in) cancels it and with it the gRPC call."""
        cutter = ClipCutter()
        clips: asyncio.Queue[Speech | None] = asyncio.Queue()
        # The stream lasts as long as the LLM's reply, then renders its last chunk.
        deadline_s = self._clients.llm.deadline_s + self._clients.tts.deadline_s
        stream = self._clients.tts.vocode(
            turn, character, self._unit_chunks(units, cutter), deadline_s=deadline_s
        )

        async def read() -> None:
            try:
                async with contextlib.aclosing(stream):
                    async for chunk in stream:
                        if len(chunk.samples):
                            self.log.mark("tts_first_audio")
                        for clip in cutter.add(chunk):
                            clips.put_nowait(clip)
                for clip in cutter.finish():
                    clips.put_nowait(clip)
            finally:
                clips.put_nowait(None)

        reader = asyncio.create_task(read())
        try:
            while (clip := await clips.get()) is not None:
                yield clip
            await reader
        finally:
            # Cancels the stream when the clips were not all taken; a failure not raised yet
            # is dropped with them.
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader

    @staticmethod
    async def _unit_chunks(units: asyncio.Queue, cutter: ClipCutter) -> AsyncIterator[list[int]]:
        """The LLM's units in chunks of ``UNITS_PER_CHUNK``; a full chunk goes once a unit
        after it (or the reply's end) is known, so the last chunk is sent knowing it is last
        and the cutter knows the reply's length before its last audio comes."""
        pending: list[int] = []
        sent = 0
        while (chunk := await units.get()) is not None:
            pending.extend(chunk)
            while len(pending) > UNITS_PER_CHUNK:
                ready, pending = pending[:UNITS_PER_CHUNK], pending[UNITS_PER_CHUNK:]
                sent += len(ready)
                yield ready
        cutter.total_units = sent + len(pending)
        if pending:
            yield pending

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


class ClipCutter:
    """Cuts the audio of one Vocode stream into headset clips, dropping and repeating nothing.

    While more audio follows, a clip is cut once ``MIN_CLIP_S`` are in hand, at most ``CLIP_S``
    long, on a unit boundary; a clip that would leave a last clip shorter than ``MIN_CLIP_S``
    (known once ``total_units`` is set) waits and goes with the rest at the end."""

    def __init__(self) -> None:
        self.rate_hz = 0
        # The reply's length in units, once the last chunk was sent.
        self.total_units: int | None = None
        self._pending: list[np.ndarray] = []
        self._pending_samples = 0
        self._cut_samples = 0

    def add(self, chunk: Speech) -> list[Speech]:
        """The clips ready after ``chunk`` of the stream."""
        self.rate_hz = chunk.rate_hz
        if len(chunk.samples):
            self._pending.append(chunk.samples)
            self._pending_samples += len(chunk.samples)
        clips = []
        while self._pending_samples >= MIN_CLIP_S * self.rate_hz:
            take = self._on_unit(min(self._pending_samples, round(CLIP_S * self.rate_hz)))
            if self.total_units is not None:
                total = self.total_units * self.rate_hz // UNIT_RATE_HZ
                if total - self._cut_samples - take < MIN_CLIP_S * self.rate_hz:
                    break
            clips.append(self._cut(take))
        return clips

    def finish(self) -> list[Speech]:
        """The rest of the stream's audio, one clip (none when there is none)."""
        return [self._cut(self._pending_samples)] if self._pending_samples else []

    def _on_unit(self, samples: int) -> int:
        per_unit = self.rate_hz // UNIT_RATE_HZ
        if self.rate_hz % UNIT_RATE_HZ or samples < per_unit:
            return samples
        return samples - samples % per_unit

    def _cut(self, samples: int) -> Speech:
        joined = np.concatenate(self._pending) if self._pending else np.zeros(0, np.float32)
        clip, rest = joined[:samples], joined[samples:]
        self._pending = [rest] if len(rest) else []
        self._pending_samples = len(rest)
        self._cut_samples += samples
        return Speech(clip, self.rate_hz)
