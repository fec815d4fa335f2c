"""One turn of the end-to-end ``solami`` method, streaming.

User speech -> SpeechTokenizer units (asr Tokenize) and user motion -> relative transform +
body/hand tokens (motion EncodeUserMotion), concurrently -> the SOLAMI LLM streams speech units
and motion tokens -> units are voiced in the character's cloned voice (tts Vocode) chunk by chunk
and motion tokens are decoded to SMPL-X (motion DecodeMotion).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
import numpy as np

from relay.clients import ServiceClients
from relay.sessions import Message, Session
from relay.settings import RelaySettings
from relay.turn import POSE_DIMS, BodyMotion, Clip, TurnError, TurnLog, animate
from solami import audio
from solami.v1 import asr_pb2, common_pb2, llm_pb2, motion_pb2, tts_pb2

# Speech units per second of audio.
UNIT_RATE_HZ = 50
# Units voiced per reply clip (1 s of speech).
UNITS_PER_CLIP = 50


def _frames(poses: np.ndarray, trans: np.ndarray) -> motion_pb2.SmplxFrames:
    return motion_pb2.SmplxFrames(
        n_frames=len(poses), poses=poses.reshape(-1).tolist(), trans=trans.reshape(-1).tolist()
    )


class SolamiTurn:
    """Runs the ``solami`` method for one utterance and its user motion."""

    def __init__(
        self, clients: ServiceClients, settings: RelaySettings, session: Session, turn_id: str
    ) -> None:
        self._clients = clients
        self._settings = settings
        self._session = session
        self._turn = common_pb2.TurnContext(session_id=session.session_id, turn_id=turn_id)
        self.log = TurnLog()
        self.user_message = Message("user")
        self.reply_message = Message("character")

    async def _encode(
        self,
        wav: bytes,
        user: tuple[np.ndarray, np.ndarray] | None,
        character: tuple[np.ndarray, np.ndarray] | None,
    ) -> llm_pb2.Message:
        speech = self._clients.asr.Tokenize(
            asr_pb2.TokenizeRequest(turn=self._turn, wav=wav, num_layers=1),
            timeout=self._settings.asr_deadline_s,
        )
        motion = None
        if user is not None and len(user[0]) >= 2:
            ai = character or (np.zeros((1, POSE_DIMS), np.float32), np.zeros((1, 3), np.float32))
            motion = self._clients.motion.EncodeUserMotion(
                motion_pb2.EncodeUserMotionRequest(
                    turn=self._turn, user=_frames(*user), character=_frames(*ai)
                ),
                timeout=self._settings.motion_deadline_s,
            )
        try:
            units = await speech
        except grpc.aio.AioRpcError as exc:
            stage = "input" if exc.code() == grpc.StatusCode.INVALID_ARGUMENT else "asr"
            raise TurnError(stage, f"{exc.code().name}: {exc.details()}") from None
        tokens = llm_pb2.SolamiTokens(speech_units=units.layers[0].ids if units.layers else [])
        if motion is not None:
            try:
                encoded = await motion
                tokens.body_ids.extend(encoded.body_ids)
                tokens.hand_ids.extend(encoded.hand_ids)
                tokens.trans_id = encoded.trans_id
            except grpc.aio.AioRpcError:
                self.log.mark("motion_encode_failed")
        self.log.mark("asr")
        self.user_message = Message(
            "user",
            speech_units=list(tokens.speech_units),
            body_ids=list(tokens.body_ids),
            hand_ids=list(tokens.hand_ids),
            trans_id=tokens.trans_id if tokens.HasField("trans_id") else None,
        )
        return llm_pb2.Message(role=llm_pb2.ROLE_USER, tokens=tokens)

    def history(self, spoken: list[Clip]) -> tuple[Message, Message]:
        """The messages this turn adds; the reply keeps only the units that were played."""
        played = sum(len(clip.samples) / clip.rate_hz for clip in spoken)
        reply = self.reply_message
        units = reply.speech_units[: round(played * UNIT_RATE_HZ)]
        return self.user_message, Message(
            "character", speech_units=units, body_ids=reply.body_ids, hand_ids=reply.hand_ids
        )

    def _history(self) -> list[llm_pb2.Message]:
        roles = {"user": llm_pb2.ROLE_USER, "character": llm_pb2.ROLE_CHARACTER}
        messages = []
        for m in self._session.history:
            tokens = llm_pb2.SolamiTokens(
                speech_units=m.speech_units, body_ids=m.body_ids, hand_ids=m.hand_ids
            )
            if m.trans_id is not None:
                tokens.trans_id = m.trans_id
            messages.append(llm_pb2.Message(role=roles[m.role], tokens=tokens))
        return messages

    async def run(
        self,
        wav: bytes,
        user: tuple[np.ndarray, np.ndarray] | None = None,
        character: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> AsyncIterator[Clip | BodyMotion]:
        user_message = await self._encode(wav, user, character)
        if not user_message.tokens.speech_units:
            return
        request = llm_pb2.GenerateRequest(
            turn=self._turn,
            character=self._session.character,
            method=llm_pb2.CONVERSATION_METHOD_SOLAMI,
            history=self._history(),
            user=user_message,
        )
        units: asyncio.Queue[list[int] | None] = asyncio.Queue()
        motion: asyncio.Queue[tuple[list[int], list[int]] | None] = asyncio.Queue()
        llm_task = asyncio.create_task(self._generate(request, units, motion))
        body_task = asyncio.create_task(self._decode_motion(motion))
        try:
            index = 0
            body_sent = False
            async for samples, rate in self._vocode(units):
                face = await animate(
                    self._clients, self._turn, samples, rate, [], self._settings.face_deadline_s
                )
                self.log.mark("first_clip")
                yield Clip(index, "", samples, rate, face)
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

    async def _generate(self, request, units: asyncio.Queue, motion: asyncio.Queue) -> None:
        try:
            async for event in self._clients.llm.Generate(
                request, timeout=self._settings.llm_deadline_s
            ):
                if event.HasField("speech_units"):
                    self.log.mark("llm_first_sentence")
                    await units.put(list(event.speech_units.ids))
                elif event.HasField("motion_tokens"):
                    chunk = event.motion_tokens
                    await motion.put((list(chunk.body_ids), list(chunk.hand_ids)))
                elif event.HasField("end"):
                    t = event.end.reply.tokens
                    self.reply_message = Message(
                        "character",
                        speech_units=list(t.speech_units),
                        body_ids=list(t.body_ids),
                        hand_ids=list(t.hand_ids),
                    )
        except grpc.aio.AioRpcError as exc:
            raise TurnError("llm", f"{exc.code().name}: {exc.details()}") from None
        finally:
            await units.put(None)
            await motion.put(None)

    async def _vocode(self, units: asyncio.Queue) -> AsyncIterator[tuple[np.ndarray, int]]:
        """Voices the units in clips of about ``UNITS_PER_CLIP``."""
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
                yield await self._vocode_clip(clip_units)

    async def _vocode_clip(self, unit_ids: list[int]) -> tuple[np.ndarray, int]:
        def requests():
            yield tts_pb2.VocodeRequest(
                turn=self._turn, config=tts_pb2.SpeechConfig(character=self._session.character)
            )
            yield tts_pb2.VocodeRequest(turn=self._turn, units=tts_pb2.UnitChunk(ids=unit_ids))
            yield tts_pb2.VocodeRequest(turn=self._turn, end=common_pb2.StreamEnd())

        rate, chunks = 0, []
        try:
            async for event in self._clients.tts.Vocode(
                requests(), timeout=self._settings.tts_deadline_s
            ):
                if event.HasField("header"):
                    rate = event.header.sample_rate_hz
                elif event.HasField("audio"):
                    chunks.append(event.audio.data)
                    self.log.mark("tts_first_audio")
        except grpc.aio.AioRpcError as exc:
            raise TurnError("tts", f"{exc.code().name}: {exc.details()}") from None
        return audio.pcm16_to_float(b"".join(chunks)), rate or 16_000

    async def _decode_motion(self, motion: asyncio.Queue) -> BodyMotion | None:
        async def requests():
            yield motion_pb2.DecodeMotionRequest(turn=self._turn, config=motion_pb2.MotionConfig())
            while (chunk := await motion.get()) is not None:
                body, hand = chunk
                yield motion_pb2.DecodeMotionRequest(
                    turn=self._turn, tokens=motion_pb2.MotionTokens(body_ids=body, hand_ids=hand)
                )
            yield motion_pb2.DecodeMotionRequest(turn=self._turn, end=common_pb2.StreamEnd())

        poses, trans = [], []
        try:
            async for event in self._clients.motion.DecodeMotion(
                requests(), timeout=self._settings.llm_deadline_s
            ):
                if event.HasField("frames"):
                    frames = event.frames.frames
                    poses.append(np.asarray(frames.poses, np.float32).reshape(-1, POSE_DIMS))
                    trans.append(np.asarray(frames.trans, np.float32).reshape(-1, 3))
        except grpc.aio.AioRpcError:
            return None
        self.log.mark("motion")
        if not poses:
            return None
        return BodyMotion(np.concatenate(poses), np.concatenate(trans), "vqvae")
