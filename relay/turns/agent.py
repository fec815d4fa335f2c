"""The agent methods (``llm+speech``, ``dlp+retrieval``), streaming: transcript -> LLM
sentences -> per sentence speech and face -> body motion for the reply.

Failures of asr, llm or tts end the turn with ``TurnError`` (the relay then apologises); face
and motion failures only lose that channel (the idle face or body plays instead).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from relay.clients import ServiceClients
from relay.clients.llm import Reply, Sentence
from relay.clients.motion import BodyMotion
from relay.clients.tts import Speech, whole
from relay.sessions import Message
from relay.turns.base import Clip, Turn, TurnEvent, TurnInput, animate, text_to_motion
from solami.v1 import common_pb2

# Speaking rate used to size the reply's body motion before all its audio exists.
SECONDS_PER_WORD = 0.38
MIN_MOTION_S = 1.5
# Motion phrase used when the reply names none.
DEFAULT_MOTION = "talk with small hand gestures"


class AgentTurn(Turn):
    """Answers with a chat LLM's text, spoken by tts, and a retrieved body motion."""

    def __init__(self, clients: ServiceClients) -> None:
        super().__init__(clients)
        self._reply: Message | None = None

    async def run(self, request: TurnInput) -> AsyncIterator[TurnEvent]:
        turn = request.context
        text = await self._clients.asr.transcribe(turn, request.wav)
        self.log.mark("asr")
        self.log.user_text = text
        if not text:
            return
        sentences: asyncio.Queue[str | None] = asyncio.Queue()
        llm_task = asyncio.create_task(self._generate(request, text, sentences))
        motion_task: asyncio.Task[BodyMotion | None] | None = None
        body_sent = False
        try:
            index = 0
            while (sentence := await _next_or_raise(sentences, llm_task)) is not None:
                if motion_task is None and llm_task.done():
                    motion_task = self._start_motion(turn)
                speech = await self._speak(turn, request.session.character, sentence)
                face = await animate(self._clients, turn, speech, self.log)
                self.log.mark("first_clip")
                self.log.sentences.append(sentence)
                yield Clip(index, sentence, speech, face)
                index += 1
                if motion_task is not None and motion_task.done() and not body_sent:
                    body_sent = True
                    if (body := motion_task.result()) is not None:
                        yield body
            await llm_task
            if motion_task is None and self.log.sentences:
                motion_task = self._start_motion(turn)
            if motion_task is not None and not body_sent and (body := await motion_task):
                yield body
        finally:
            for task in (llm_task, motion_task):
                if task is not None and not task.done():
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await task

    def history(self, spoken: list[Clip], finished: bool) -> list[Message]:
        if not spoken and not (self.log.user_text and finished):
            return []
        said = " ".join(clip.text for clip in spoken)
        return [
            Message("user", text=self.log.user_text),
            Message("character", text=said, motion=self.log.motion_text),
        ]

    async def _generate(
        self, request: TurnInput, text: str, sentences: asyncio.Queue[str | None]
    ) -> None:
        session = request.session
        events = self._clients.llm.generate(
            request.context,
            session.character,
            session.method,
            session.history,
            Message("user", text=text),
        )
        try:
            async for event in events:
                if isinstance(event, Sentence):
                    self.log.mark("llm_first_sentence")
                    await sentences.put(event.text)
                elif isinstance(event, Reply):
                    self._reply = event.message
        finally:
            await sentences.put(None)
        self.log.mark("llm")
        self.log.motion_text = self._reply.motion if self._reply is not None else ""

    async def _speak(self, turn: common_pb2.TurnContext, character: str, text: str) -> Speech:
        async def marked():
            async for chunk in self._clients.tts.synthesize(turn, character, text):
                if len(chunk.samples):
                    self.log.mark("tts_first_audio")
                yield chunk

        return await whole(marked())

    def _start_motion(self, turn: common_pb2.TurnContext) -> asyncio.Task[BodyMotion | None]:
        speech = self._reply.text if self._reply is not None else ""
        words = len((speech or " ".join(self.log.sentences)).split())
        seconds = max(MIN_MOTION_S, words * SECONDS_PER_WORD)
        phrase = self.log.motion_text or DEFAULT_MOTION
        return asyncio.create_task(text_to_motion(self._clients, turn, phrase, seconds, self.log))


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
