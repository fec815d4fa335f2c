"""The LLM-agent methods of the original server, streaming: transcript (and, for the
``dlp+motiongpt`` methods, a caption of the user's body motion) -> LLM sentences -> per
sentence speech and face -> body motion for the reply.

The reply's motion text becomes motion by retrieval from the motion library, or by the motion
service's generator for ``dlp+motiongpt``. A motion the user asked for is never missed: when the
transcript reads as a request (``reads_as_request``) the library is asked for it too, beside the
reply's motion text, and its clip plays when its similarity to the transcript is at least
``REQUEST_SCORE_FLOOR`` (``pick_motion``); otherwise the reply's motion plays.
``llm+speech`` replies have no motion text: the original plays no body motion for them
(``speech_gesture=False``); by default a talking gesture from the library plays while the
character speaks.

Failures of asr, llm or tts end the turn with ``TurnError`` (the relay then apologises); face,
motion and caption failures only lose that channel (the idle face or body plays instead, the
prompt gets no caption).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Awaitable

from relay.clients import ServiceClients
from relay.clients.llm import Reply, Sentence
from relay.clients.motion import BodyMotion
from relay.clients.tts import Speech, whole
from relay.sessions import Message
from relay.turns.base import (
    Clip,
    Turn,
    TurnEvent,
    TurnInput,
    animate,
    caption_motion,
    text_to_motion,
)
from solami.methods import Method
from solami.v1 import common_pb2

# Speaking rate used to size the reply's body motion before all its audio exists.
SECONDS_PER_WORD = 0.38
MIN_MOTION_S = 1.5
# Motion phrase used when the reply names none.
DEFAULT_MOTION = "talk with small hand gestures"
# The transcript's library clip plays when retrieval finds it at least this similar to the
# transcript (MotionHeader.score, cosine of MiniLM embeddings). On the conversation benchmark's
# utterances (bench/data/dialogue.jsonl) requests the library has score 0.49-0.84 (one
# indirect "can you point where the villain went?" 0.30); the other utterances that read as a
# request score at most 0.42 ("what can you do with your body?"), those that do not up to 0.54
# ("ok").
REQUEST_SCORE_FLOOR = 0.45
# Longer transcripts are talk, not a request for a motion (and too long for the library).
REQUEST_MAX_CHARS = 200
# Words that make an utterance a request ("can you wave", "show me a bow", "let's dance").
_REQUEST_CUE = re.compile(
    r"\b(can|could|would|will) you\b|\bshow me\b|\blet'?s\b|\blet us\b|\bplease\b"
    r"|\bgive me\b|\bdo a\b|\btry to\b",
    re.IGNORECASE,
)
# First words that do not start a command: questions, statements, greetings, fillers.
_NOT_A_COMMAND_WORDS = (
    "i i'm im you you're my me we it it's that this there the a an what why who whom whose "
    "how when where which do does did is are am was were have has had can could would will "
    "should hi hello hey ok okay yes yeah no nope hmm oh ah um well so and but thanks thank sorry"
)
_NOT_A_COMMAND = frozenset(_NOT_A_COMMAND_WORDS.split())


def reads_as_request(transcript: str) -> bool:
    """Whether the user's words ask the character to do something: a short utterance with a
    request cue ("could you", "show me", "let's", "please") or one that starts with a verb
    rather than a question word, a pronoun, a greeting or a filler ("Take a bow", "Wave goodbye
    to me")."""
    text = transcript.strip()
    if not text or len(text) > REQUEST_MAX_CHARS:
        return False
    if _REQUEST_CUE.search(text):
        return True
    words = re.findall(r"[a-z']+", text.lower())
    return bool(words) and words[0] not in _NOT_A_COMMAND


def pick_motion(asked: BodyMotion | None, said: BodyMotion | None) -> BodyMotion | None:
    """The rule between the transcript's clip (``asked``) and the reply's motion (``said``):
    the transcript's when its similarity reaches ``REQUEST_SCORE_FLOOR``, else the reply's (and
    the transcript's when the reply's failed)."""
    if asked is not None and (said is None or asked.score >= REQUEST_SCORE_FLOOR):
        return asked
    return said


class AgentTurn(Turn):
    """Answers with a chat LLM's text, spoken by tts, and a body motion for its motion text."""

    def __init__(self, clients: ServiceClients, method: Method, speech_gesture: bool) -> None:
        super().__init__(clients)
        self._method = method
        # llm+speech: a talking gesture plays while the character speaks (else idle).
        self._speech_gesture = speech_gesture
        # The user's motion is read only to caption it.
        self.reads_body = method.captions_user
        self._reply: Message | None = None

    async def run(self, request: TurnInput) -> AsyncIterator[TurnEvent]:
        turn = request.context
        # The caption runs beside asr; the prompt needs both.
        caption_task = asyncio.create_task(self._caption(request))
        try:
            text = await self._clients.asr.transcribe(turn, request.wav)
        except BaseException:
            caption_task.cancel()
            raise
        self.log.mark("asr")
        self.log.user_text = text
        if not text:
            caption_task.cancel()
            return
        self.log.user_motion_text = await caption_task
        sentences: asyncio.Queue[str | None] = asyncio.Queue()
        llm_task = asyncio.create_task(self._generate(request, text, sentences))
        motion_task: asyncio.Task[BodyMotion | None] | None = None
        body_sent = False
        try:
            index = 0
            while (sentence := await _next_or_raise(sentences, llm_task)) is not None:
                if motion_task is None and llm_task.done() and self._moves:
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
            if motion_task is None and self.log.sentences and self._moves:
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
        said = " ".join(clip.text for clip in spoken if clip.text)
        return [
            Message("user", text=self.log.user_text, motion=self.log.user_motion_text),
            Message("character", text=said, motion=self.log.motion_text),
        ]

    async def _caption(self, request: TurnInput) -> str:
        """The caption of the user's motion for methods that read it ("" otherwise)."""
        if not self.reads_body or request.user_motion is None:
            return ""
        return await caption_motion(self._clients, request.context, request.user_motion, self.log)

    async def _generate(
        self, request: TurnInput, text: str, sentences: asyncio.Queue[str | None]
    ) -> None:
        session = request.session
        events = self._clients.llm.generate(
            request.context,
            session.character,
            session.method,
            session.history,
            Message("user", text=text, motion=self.log.user_motion_text),
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

    @property
    def _moves(self) -> bool:
        """Whether the reply gets a body motion (llm+speech only with the talking gesture)."""
        return self._method.motion_text or self._speech_gesture

    def _start_motion(self, turn: common_pb2.TurnContext) -> asyncio.Task[BodyMotion | None]:
        speech = self._reply.text if self._reply is not None else ""
        words = len((speech or " ".join(self.log.sentences)).split())
        seconds = max(MIN_MOTION_S, words * SECONDS_PER_WORD)
        phrase = self.log.motion_text or DEFAULT_MOTION
        generate = self._method.generates_motion and bool(self.log.motion_text)
        said = text_to_motion(self._clients, turn, phrase, seconds, self.log, generate)
        if not reads_as_request(self.log.user_text):
            return asyncio.create_task(said)
        asked = text_to_motion(self._clients, turn, self.log.user_text, seconds, self.log)
        return asyncio.create_task(_asked_or_said(asked, said))


async def _asked_or_said(
    asked: Awaitable[BodyMotion | None], said: Awaitable[BodyMotion | None]
) -> BodyMotion | None:
    """Both candidates at once, then ``pick_motion``."""
    return pick_motion(*await asyncio.gather(asked, said))


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
