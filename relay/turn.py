"""One turn of the agent methods, streaming: transcript -> LLM sentences -> per sentence speech
and face -> body motion for the reply. Yields reply clips in order as soon as each is ready.

Failures of asr, llm or tts end the turn with ``TurnError`` (the relay then apologises); face
and motion failures only lose that channel (the idle face or body plays instead).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import AsyncIterator

import grpc
import numpy as np

from relay.clients import ServiceClients
from relay.sessions import Message, Session
from relay.settings import RelaySettings
from solami import audio
from solami.logs import log_event
from solami.v1 import (
    asr_pb2,
    common_pb2,
    face_pb2,
    llm_pb2,
    motion_pb2,
    tts_pb2,
)

log = logging.getLogger(__name__)

FPS = 30
FACE_CHANNELS = 61
POSE_DIMS = 165
# Speaking rate used to size the reply's body motion before all its audio exists.
SECONDS_PER_WORD = 0.38
MIN_MOTION_S = 1.5
# Motion phrase used when the reply names none.
DEFAULT_MOTION = "talk with small hand gestures"
METHOD_ENUMS = {
    "llm+speech": llm_pb2.CONVERSATION_METHOD_LLM_SPEECH,
    "dlp+retrieval": llm_pb2.CONVERSATION_METHOD_DLP_RETRIEVAL,
    "solami": llm_pb2.CONVERSATION_METHOD_SOLAMI,
}


class TurnError(Exception):
    """A stage the reply cannot do without failed."""

    def __init__(self, stage: str, reason: str) -> None:
        super().__init__(f"{stage}: {reason}")
        self.stage = stage
        self.reason = reason


@dataclasses.dataclass(frozen=True)
class Clip:
    """One sentence of the reply: its audio and the face that goes with it."""

    index: int
    text: str
    samples: np.ndarray
    rate_hz: int
    # (frames, 61) at 30 fps from the clip's start; None when the face service failed.
    face: np.ndarray | None

    @property
    def duration_s(self) -> float:
        return len(self.samples) / self.rate_hz

    def wav(self, pad_s: float = 0.0) -> bytes:
        """The clip as a WAV, followed by ``pad_s`` seconds of silence."""
        pad = np.zeros(round(pad_s * self.rate_hz), np.float32)
        return audio.encode_wav(np.concatenate([self.samples, pad]), self.rate_hz)


@dataclasses.dataclass(frozen=True)
class BodyMotion:
    """The body animation of the reply, SMPL-X Y-up at 30 fps."""

    poses: np.ndarray
    trans: np.ndarray
    source: str


@dataclasses.dataclass
class TurnLog:
    """What happened in a turn: transcript, reply parts, per-stage milliseconds."""

    user_text: str = ""
    motion_text: str = ""
    sentences: list[str] = dataclasses.field(default_factory=list)
    stages_ms: dict[str, float] = dataclasses.field(default_factory=dict)
    started: float = dataclasses.field(default_factory=time.perf_counter)

    def mark(self, stage: str) -> None:
        self.stages_ms.setdefault(stage, round((time.perf_counter() - self.started) * 1000, 1))


def history_messages(session: Session) -> list[llm_pb2.Message]:
    roles = {"user": llm_pb2.ROLE_USER, "character": llm_pb2.ROLE_CHARACTER}
    return [
        llm_pb2.Message(role=roles[m.role], text=m.text, motion_text=m.motion)
        for m in session.history
    ]


class AgentTurn:
    """Runs ``llm+speech`` / ``dlp+retrieval`` for one utterance."""

    def __init__(
        self,
        clients: ServiceClients,
        settings: RelaySettings,
        session: Session,
        turn_id: str,
    ) -> None:
        self._clients = clients
        self._settings = settings
        self._session = session
        self._turn = common_pb2.TurnContext(session_id=session.session_id, turn_id=turn_id)
        self.log = TurnLog()

    async def run(self, wav: bytes) -> AsyncIterator[Clip | BodyMotion]:
        text = await self._transcribe(wav)
        self.log.user_text = text
        if not text:
            return
        sentences: asyncio.Queue[str | None] = asyncio.Queue()
        reply: dict[str, str] = {}
        llm_task = asyncio.create_task(self._generate(text, sentences, reply))
        motion_task: asyncio.Task[BodyMotion | None] | None = None
        try:
            index = 0
            while True:
                sentence = await _next_or_raise(sentences, llm_task)
                if sentence is None:
                    break
                if motion_task is None and llm_task.done():
                    motion_task = self._start_motion(reply)
                samples, rate, timings = await self._synthesize(sentence)
                face = await self._animate(samples, rate, timings)
                self.log.mark("first_clip")
                self.log.sentences.append(sentence)
                yield Clip(index, sentence, samples, rate, face)
                index += 1
                if motion_task is not None and motion_task.done():
                    body = motion_task.result()
                    motion_task = None
                    reply["motion_sent"] = "1"
                    if body is not None:
                        yield body
            await llm_task
            if motion_task is None and "motion_sent" not in reply and self.log.sentences:
                motion_task = self._start_motion(reply)
            if motion_task is not None:
                body = await motion_task
                if body is not None:
                    yield body
        finally:
            for task in (llm_task, motion_task):
                if task is not None and not task.done():
                    task.cancel()

    async def _transcribe(self, wav: bytes) -> str:
        try:
            reply = await self._clients.asr.Transcribe(
                asr_pb2.TranscribeRequest(turn=self._turn, wav=wav),
                timeout=self._settings.asr_deadline_s,
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.INVALID_ARGUMENT:
                raise TurnError("input", exc.details() or "bad audio") from None
            raise TurnError("asr", f"{exc.code().name}: {exc.details()}") from None
        self.log.mark("asr")
        return reply.text.strip()

    async def _generate(
        self, text: str, sentences: asyncio.Queue[str | None], reply: dict[str, str]
    ) -> None:
        request = llm_pb2.GenerateRequest(
            turn=self._turn,
            character=self._session.character,
            method=METHOD_ENUMS[self._session.method],
            history=history_messages(self._session),
            user=llm_pb2.Message(role=llm_pb2.ROLE_USER, text=text),
        )
        try:
            async for event in self._clients.llm.Generate(
                request, timeout=self._settings.llm_deadline_s
            ):
                if event.HasField("sentence"):
                    self.log.mark("llm_first_sentence")
                    await sentences.put(event.sentence.text)
                elif event.HasField("end"):
                    reply["speech"] = event.end.reply.speech
                    reply["motion"] = event.end.reply.motion
        except grpc.aio.AioRpcError as exc:
            raise TurnError("llm", f"{exc.code().name}: {exc.details()}") from None
        finally:
            await sentences.put(None)
        self.log.mark("llm")
        self.log.motion_text = reply.get("motion", "")

    async def _synthesize(self, sentence: str) -> tuple[np.ndarray, int, list]:
        result = await synthesize(
            self._clients,
            self._turn,
            self._session.character,
            sentence,
            self._settings.tts_deadline_s,
            self.log,
        )
        return result

    async def _animate(self, samples: np.ndarray, rate: int, timings: list) -> np.ndarray | None:
        face = await animate(
            self._clients, self._turn, samples, rate, timings, self._settings.face_deadline_s
        )
        if face is not None:
            self.log.mark("face")
        return face

    def history(self, spoken: list[Clip]) -> tuple[Message, Message]:
        """The messages this turn adds: only what was actually played."""
        return history_update(self.log, [clip.text for clip in spoken])

    def _start_motion(self, reply: dict[str, str]) -> asyncio.Task[BodyMotion | None]:
        words = len((reply.get("speech") or " ".join(self.log.sentences)).split())
        seconds = max(MIN_MOTION_S, words * SECONDS_PER_WORD)
        phrase = reply.get("motion") or DEFAULT_MOTION
        return asyncio.create_task(
            text_to_motion(
                self._clients,
                self._turn,
                phrase,
                seconds,
                self._settings.motion_deadline_s,
                self.log,
            )
        )


async def synthesize(
    clients: ServiceClients,
    turn: common_pb2.TurnContext,
    character: str,
    text: str,
    deadline_s: float,
    turn_log: TurnLog | None = None,
) -> tuple[np.ndarray, int, list]:
    """Speech for ``text`` in ``character``'s voice: (samples, rate, phoneme timings)."""

    def requests():
        yield tts_pb2.SynthesizeRequest(turn=turn, config=tts_pb2.SpeechConfig(character=character))
        yield tts_pb2.SynthesizeRequest(turn=turn, text=tts_pb2.TextPiece(text=text))
        yield tts_pb2.SynthesizeRequest(turn=turn, end=common_pb2.StreamEnd())

    rate, chunks, timings = 0, [], []
    try:
        async for event in clients.tts.Synthesize(requests(), timeout=deadline_s):
            kind = event.WhichOneof("event")
            if kind == "header":
                rate = event.header.sample_rate_hz
            elif kind == "audio":
                chunks.append(event.audio.data)
                if turn_log is not None:
                    turn_log.mark("tts_first_audio")
            elif kind == "timings":
                timings.extend(event.timings.phonemes)
    except grpc.aio.AioRpcError as exc:
        raise TurnError("tts", f"{exc.code().name}: {exc.details()}") from None
    if not rate:
        raise TurnError("tts", "the speech stream had no header")
    return audio.pcm16_to_float(b"".join(chunks)), rate, timings


async def animate(
    clients: ServiceClients,
    turn: common_pb2.TurnContext,
    samples: np.ndarray,
    rate: int,
    timings: list,
    deadline_s: float,
) -> np.ndarray | None:
    """Face frames (frames, 61) at 30 fps for the audio; None when the face service fails."""

    def requests():
        header = common_pb2.AudioHeader(
            sample_rate_hz=rate, channels=1, encoding=common_pb2.AUDIO_ENCODING_PCM16
        )
        yield face_pb2.AnimateRequest(turn=turn, config=face_pb2.FaceConfig(audio=header))
        if timings:
            yield face_pb2.AnimateRequest(
                turn=turn, timings=common_pb2.SpeechTimings(phonemes=timings)
            )
        yield face_pb2.AnimateRequest(
            turn=turn, audio=common_pb2.AudioChunk(data=audio.float_to_pcm16(samples))
        )
        yield face_pb2.AnimateRequest(turn=turn, end=common_pb2.StreamEnd())

    blocks = []
    try:
        async for event in clients.face.Animate(requests(), timeout=deadline_s):
            if event.HasField("frames"):
                blocks.append(
                    np.asarray(event.frames.weights, np.float32).reshape(-1, FACE_CHANNELS)
                )
    except grpc.aio.AioRpcError as exc:
        log_event(log, "face failed", logging.WARNING, code=exc.code().name)
        return None
    return np.concatenate(blocks) if blocks else np.zeros((0, FACE_CHANNELS), np.float32)


async def text_to_motion(
    clients: ServiceClients,
    turn: common_pb2.TurnContext,
    phrase: str,
    seconds: float,
    deadline_s: float,
    turn_log: TurnLog | None = None,
) -> BodyMotion | None:
    """A library motion for ``phrase`` fitted to ``seconds``; None when the service fails."""
    poses, trans, source = [], [], ""
    try:
        async for event in clients.motion.TextToMotion(
            motion_pb2.TextToMotionRequest(turn=turn, text=phrase, duration_s=seconds),
            timeout=deadline_s,
        ):
            if event.HasField("header"):
                source = event.header.source
            elif event.HasField("frames"):
                frames = event.frames.frames
                poses.append(np.asarray(frames.poses, np.float32).reshape(-1, POSE_DIMS))
                trans.append(np.asarray(frames.trans, np.float32).reshape(-1, 3))
    except grpc.aio.AioRpcError as exc:
        log_event(log, "motion failed", logging.WARNING, code=exc.code().name)
        return None
    if turn_log is not None:
        turn_log.mark("motion")
    if not poses:
        return None
    return BodyMotion(np.concatenate(poses), np.concatenate(trans), source)


async def _next_or_raise(queue: asyncio.Queue, producer: asyncio.Task):
    """The next queue item; re-raises the producer's error if it failed first."""
    getter = asyncio.ensure_future(queue.get())
    done, _ = await asyncio.wait({getter, producer}, return_when=asyncio.FIRST_COMPLETED)
    if getter in done:
        return getter.result()
    if producer.exception() is not None:
        getter.cancel()
        raise producer.exception()
    return await getter


def history_update(log_: TurnLog, spoken: list[str]) -> tuple[Message, Message]:
    """The messages a finished (or interrupted) turn adds: only what was actually spoken."""
    return (
        Message("user", text=log_.user_text),
        Message("character", text=" ".join(spoken), motion=log_.motion_text),
    )
