"""In-process fakes of the relay's typed service clients, named as such: they stand in for the
five services where a test drives the turn logic (order, pacing, barge-in, failures) and must
control each service's latency and failures. The real clients over real servers are tested in
the end-to-end suite.

Each fake has the same methods and signatures as its real client (async generators where the
real ones are) and the same knobs, keyed by method name:

- ``delays``: seconds a call waits before each thing it yields (streams) or before it returns;
- ``faults``: a ``Fault`` makes chosen calls raise ``TurnError`` at a chosen point;
- ``holds``: a ``Hold`` makes chosen calls wait at a chosen point until the test releases them.

Every call is recorded in a ``Journal`` shared by the fakes of one ``fake_clients(...)``: its
arguments, what it yielded or received, and how it ended ("done", "failed", or "stopped" when
it was cancelled or closed before its end), with sequence numbers that order calls across
services. ``Journal.wait_for`` lets a test await a condition instead of sleeping.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
from collections.abc import AsyncIterator, Callable, Collection, Mapping, Sequence
from typing import Any

import numpy as np

from relay.clients import ServiceClients
from relay.clients.llm import MotionTokens, Reply, ReplyEvent, Sentence, SpeechUnits
from relay.clients.motion import BodyMotion, MotionCaption, SmplxClip, UserMotionTokens
from relay.clients.tts import Speech
from relay.errors import TurnError
from relay.sessions import Message
from solami.avatar.face import CHANNEL_COUNT
from solami.avatar.rates import FPS, FRAMES_PER_TOKEN, UNIT_RATE_HZ
from solami.avatar.skeleton import POSE_DIMS, TRANS_DIMS
from solami.v1 import common_pb2

# Fake speech: mono float32 at this rate, this long per word of text or per speech unit.
SAMPLE_RATE_HZ = 16_000
SECONDS_PER_WORD = 0.05
SECONDS_PER_UNIT = 1 / UNIT_RATE_HZ
# The soft tone in the first half of each fake clip (the rest is silence).
TONE_HZ = 440.0
TONE_AMPLITUDE = 0.1
# Deadline the fakes report (the turn passes the llm's on to the motion decoder).
DEADLINE_S = 5.0
# Longest a test waits for a journal condition before failing instead of hanging.
WAIT_LIMIT_S = 10.0

DEFAULT_TRANSCRIPT = "how are you today"
DEFAULT_REPLY = ("I am well.", "Thank you for asking.")
DEFAULT_MOTION = "wave hello"
DEFAULT_USER_UNITS = tuple(range(500, 540))
DEFAULT_USER_TOKENS = UserMotionTokens([11, 12], [21, 22], 7)
DEFAULT_CAPTION = "a person waves at you"

# What a scripted LLM reply is made of: sentence texts (agent methods) or unit/token chunks
# (solami), in the order the LLM streams them.
ReplyPart = str | SpeechUnits | MotionTokens


def tone(seconds: float, rate_hz: int = SAMPLE_RATE_HZ) -> np.ndarray:
    """``seconds`` of float32 audio: a soft tone over the first half, silence after."""
    t = np.arange(round(seconds * rate_hz)) / rate_hz
    wave = TONE_AMPLITUDE * np.sin(2 * np.pi * TONE_HZ * t)
    return np.where(t < seconds / 2, wave, 0.0).astype(np.float32)


class Journal:
    """The calls made to the fakes of one set of clients, in the order they started."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self._sequence = itertools.count()
        self._waiters: list[asyncio.Future[None]] = []

    def tick(self) -> int:
        """The next sequence number (orders starts and ends across services)."""
        return next(self._sequence)

    def of(self, service: str, method: str | None = None) -> list[Call]:
        """The calls of ``service`` (and ``method``), in the order they started."""
        return [c for c in self.calls if c.service == service and method in (None, c.method)]

    def changed(self) -> None:
        """Wakes the tests waiting for a condition on the journal."""
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def wait_for(self, condition: Callable[[], bool], limit_s: float = WAIT_LIMIT_S) -> None:
        """Returns once ``condition()`` holds (checked after every change of the journal);
        fails after ``limit_s`` rather than hang a broken test."""
        async with asyncio.timeout(limit_s):
            while not condition():
                waiter = asyncio.get_running_loop().create_future()
                self._waiters.append(waiter)
                await waiter


@dataclasses.dataclass(eq=False)
class Call:
    """One call of a fake: what it was given, what it yielded, how it ended."""

    journal: Journal = dataclasses.field(repr=False)
    service: str
    method: str
    # 1-based among the calls of this method.
    number: int
    args: dict[str, Any]
    started: int
    # What a stream yielded, in order.
    items: list[Any] = dataclasses.field(default_factory=list)
    # What a request stream sent in (decode_motion's token chunks, vocode's unit chunks).
    received: list[Any] = dataclasses.field(default_factory=list)
    # What a unary call returned.
    result: Any = None
    # "running", then "done", "failed" (it raised) or "stopped" (cancelled or closed early).
    outcome: str = "running"
    ended: int | None = None
    # Waiting at a ``Hold`` now; ``stopping``: cancelled while held, not stopped yet.
    held: bool = False
    stopping: bool = False

    def __enter__(self) -> Call:
        return self

    def __exit__(self, kind, exc, traceback) -> bool:
        if kind is None:
            self.outcome = "done"
        elif issubclass(kind, (asyncio.CancelledError, GeneratorExit)):
            self.outcome = "stopped"
        else:
            self.outcome = "failed"
        self.ended = self.journal.tick()
        self.journal.changed()
        return False


@dataclasses.dataclass
class Fault:
    """Makes the calls numbered in ``calls`` (1-based per method; empty: every call) raise
    ``TurnError(stage, reason)`` once ``after`` items were yielded (streams) or token chunks
    received (decode_motion); ``stage`` None: the fake's service. ``error`` is raised instead
    when set (a bug in the stage, not a failed service)."""

    stage: str | None = None
    reason: str = "injected failure"
    calls: Collection[int] = ()
    after: int = 0
    error: Exception | None = None

    def applies(self, number: int, step: int) -> bool:
        return step == self.after and (not self.calls or number in self.calls)

    def exception(self, service: str) -> Exception:
        return self.error or TurnError(self.stage or service, self.reason)


@dataclasses.dataclass
class Hold:
    """Makes the calls numbered in ``calls`` (1-based per method; empty: every call) wait once
    ``after`` items were yielded, until ``release`` is set; ``reached`` is set when a call gets
    there. With ``stops_late`` a held call that is cancelled still waits for ``release``
    before it stops (a stream slow to stop)."""

    calls: Collection[int] = ()
    after: int = 0
    stops_late: bool = False
    reached: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)
    release: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)

    def applies(self, number: int, step: int) -> bool:
        return step == self.after and (not self.calls or number in self.calls)

    async def wait(self, call: Call) -> None:
        call.held = True
        self.reached.set()
        call.journal.changed()
        try:
            await self.release.wait()
        except asyncio.CancelledError:
            if not self.stops_late:
                raise
            call.stopping = True
            call.journal.changed()
            while not self.release.is_set():
                with contextlib.suppress(asyncio.CancelledError):
                    await self.release.wait()
            raise
        finally:
            call.held = False


class _FakeService:
    """What every fake shares: its knobs, its journal and the steps of a call."""

    service = ""

    def __init__(
        self,
        *,
        delays: Mapping[str, float] | None = None,
        faults: Mapping[str, Fault] | None = None,
        holds: Mapping[str, Hold] | None = None,
        deadline_s: float = DEADLINE_S,
    ) -> None:
        self.delays = dict(delays or {})
        self.faults = dict(faults or {})
        self.holds = dict(holds or {})
        self.deadline_s = deadline_s
        # Replaced by the shared one when built by ``fake_clients``.
        self.journal = Journal()

    def calls(self, method: str | None = None) -> list[Call]:
        return self.journal.of(self.service, method)

    def _start(self, method: str, /, **args: Any) -> Call:
        number = len(self.calls(method)) + 1
        call = Call(self.journal, self.service, method, number, args, self.journal.tick())
        self.journal.calls.append(call)
        self.journal.changed()
        return call

    async def _step(self, call: Call, step: int) -> None:
        """Before item ``step`` of ``call`` (0-based; a unary call has one): its delay, hold
        and fault."""
        delay = self.delays.get(call.method, 0.0)
        if delay > 0:
            await asyncio.sleep(delay)
        hold = self.holds.get(call.method)
        if hold is not None and hold.applies(call.number, step):
            await hold.wait(call)
        fault = self.faults.get(call.method)
        if fault is not None and fault.applies(call.number, step):
            raise fault.exception(self.service)

    def _yielded(self, call: Call, item: Any) -> Any:
        call.items.append(item)
        self.journal.changed()
        return item

    def _returned(self, call: Call, result: Any) -> Any:
        call.result = result
        return result


class FakeAsr(_FakeService):
    """Stands in for ``AsrClient``: scripted transcripts (one per call, the last repeats) and
    speech units."""

    service = "asr"

    def __init__(
        self,
        transcripts: Sequence[str] = (DEFAULT_TRANSCRIPT,),
        units: Sequence[int] = DEFAULT_USER_UNITS,
        **knobs: Any,
    ) -> None:
        super().__init__(**knobs)
        self.transcripts = list(transcripts)
        self.units = list(units)

    async def transcribe(self, turn: common_pb2.TurnContext, wav: bytes) -> str:
        with self._start("transcribe", turn=turn, wav=wav) as call:
            await self._step(call, 0)
            text = self.transcripts[min(call.number, len(self.transcripts)) - 1]
            return self._returned(call, text)

    async def tokenize(self, turn: common_pb2.TurnContext, wav: bytes) -> list[int]:
        with self._start("tokenize", turn=turn, wav=wav) as call:
            await self._step(call, 0)
            return self._returned(call, list(self.units))


class FakeLlm(_FakeService):
    """Stands in for ``LlmClient``: scripted replies (one per call, the last repeats), each
    streamed part by part and closed by the whole ``Reply``."""

    service = "llm"

    def __init__(
        self,
        replies: Sequence[Sequence[ReplyPart]] = (DEFAULT_REPLY,),
        motion: str = DEFAULT_MOTION,
        **knobs: Any,
    ) -> None:
        super().__init__(**knobs)
        self.replies = [list(reply) for reply in replies]
        self.motion = motion

    def events(self, number: int) -> list[ReplyEvent]:
        """What call ``number`` streams: its reply's parts, then the whole reply."""
        parts = self.replies[min(number, len(self.replies)) - 1]
        events: list[ReplyEvent] = [Sentence(p) if isinstance(p, str) else p for p in parts]
        sentences = [p for p in parts if isinstance(p, str)]
        motion = [e for e in events if isinstance(e, MotionTokens)]
        message = Message(
            "character",
            text=" ".join(sentences),
            motion=self.motion if sentences else "",
            speech_units=[u for e in events if isinstance(e, SpeechUnits) for u in e.ids],
            body_ids=[i for e in motion for i in e.body_ids],
            hand_ids=[i for e in motion for i in e.hand_ids],
        )
        return [*events, Reply(message)]

    async def generate(
        self,
        turn: common_pb2.TurnContext,
        character: str,
        method: str,
        history: Sequence[Message],
        user: Message,
    ) -> AsyncIterator[ReplyEvent]:
        call = self._start(
            "generate",
            turn=turn,
            character=character,
            method=method,
            history=list(history),
            user=dataclasses.replace(user),
        )
        with call:
            for step, event in enumerate(self.events(call.number)):
                await self._step(call, step)
                yield self._yielded(call, event)


class FakeTts(_FakeService):
    """Stands in for ``TtsClient``: ``SECONDS_PER_WORD`` of tone per word of text and
    ``SECONDS_PER_UNIT`` per speech unit, streamed as the real service does (a header chunk,
    then for text one chunk of phoneme timings, then the audio in two chunks; for units, one
    stream whose unit chunks are read as they are sent, ``received``)."""

    service = "tts"

    def __init__(
        self,
        seconds_per_word: float = SECONDS_PER_WORD,
        seconds_per_unit: float = SECONDS_PER_UNIT,
        rate_hz: int = SAMPLE_RATE_HZ,
        held_units: int = 0,
        **knobs: Any,
    ) -> None:
        super().__init__(**knobs)
        self.seconds_per_word = seconds_per_word
        self.seconds_per_unit = seconds_per_unit
        self.rate_hz = rate_hz
        self.held_units = held_units

    def speech_for(self, text: str) -> Speech:
        """The whole speech ``synthesize`` makes of ``text``."""
        words = text.split()
        step_ms = round(self.seconds_per_word * 1000)
        timings = tuple(
            common_pb2.PhonemeTiming(phoneme=w, start_ms=i * step_ms, end_ms=(i + 1) * step_ms)
            for i, w in enumerate(words)
        )
        return Speech(tone(len(words) * self.seconds_per_word, self.rate_hz), self.rate_hz, timings)

    def speech_for_units(self, units: Sequence[int]) -> Speech:
        """The speech ``vocode`` makes of one chunk of ``units``."""
        return Speech(tone(len(units) * self.seconds_per_unit, self.rate_hz), self.rate_hz)

    async def synthesize(
        self, turn: common_pb2.TurnContext, character: str, text: str
    ) -> AsyncIterator[Speech]:
        call = self._start("synthesize", turn=turn, character=character, text=text)
        speech = self.speech_for(text)
        with call:
            for step, chunk in enumerate(self._chunks(speech)):
                await self._step(call, step)
                yield self._yielded(call, chunk)

    async def vocode(
        self,
        turn: common_pb2.TurnContext,
        character: str,
        units: AsyncIterator[list[int]],
        deadline_s: float | None = None,
    ) -> AsyncIterator[Speech]:
        """One stream: a header chunk, then per unit chunk received its speech in two halves,
        less the audio of the last ``held_units`` units, which comes with the next chunk or at
        the end (as the real service holds it back for its cross-fade)."""
        call = self._start("vocode", turn=turn, character=character, deadline_s=deadline_s)
        per_unit = round(self.seconds_per_unit * self.rate_hz)
        held = np.zeros(0, np.float32)
        with call:
            await self._step(call, 0)
            yield self._yielded(call, Speech(np.zeros(0, np.float32), self.rate_hz))
            async for ids in units:
                call.received.append(list(ids))
                self.journal.changed()
                fresh = np.concatenate([held, self.speech_for_units(ids).samples])
                ready = max(0, len(fresh) - self.held_units * per_unit)
                held = fresh[ready:]
                half = ready // 2
                for piece in (fresh[:half], fresh[half:ready]):
                    await self._step(call, len(call.items))
                    yield self._yielded(call, Speech(piece, self.rate_hz))
            if len(held):
                await self._step(call, len(call.items))
                yield self._yielded(call, Speech(held, self.rate_hz))

    def _chunks(self, speech: Speech) -> list[Speech]:
        empty = np.zeros(0, np.float32)
        half = len(speech.samples) // 2
        chunks = [Speech(empty, speech.rate_hz)]
        if speech.timings:
            chunks.append(Speech(empty, speech.rate_hz, speech.timings))
        chunks += [
            Speech(speech.samples[:half], speech.rate_hz),
            Speech(speech.samples[half:], speech.rate_hz),
        ]
        return chunks


class FakeMotion(_FakeService):
    """Stands in for ``MotionClient``: still SMPL-X clips of the asked length, scripted user
    motion tokens and caption, and a decoder that reads the token chunks as they are streamed
    to it."""

    service = "motion"

    def __init__(
        self,
        user_tokens: UserMotionTokens = DEFAULT_USER_TOKENS,
        caption_text: str = DEFAULT_CAPTION,
        scores: Mapping[str, float] | None = None,
        **knobs: Any,
    ) -> None:
        super().__init__(**knobs)
        self.user_tokens = user_tokens
        self.caption_text = caption_text
        # Library similarity of each text asked for (MotionHeader.score); 0 for the others.
        self.scores = dict(scores or {})

    async def text_to_motion(
        self, turn: common_pb2.TurnContext, text: str, seconds: float, generate: bool = False
    ) -> BodyMotion | None:
        with self._start(
            "text_to_motion", turn=turn, text=text, seconds=seconds, generate=generate
        ) as call:
            await self._step(call, 0)
            source = f"fake {'generator' if generate else 'library'}: {text}"
            still = _still(round(seconds * FPS), source)
            score = 0.0 if generate else self.scores.get(text, 0.0)
            return self._returned(call, dataclasses.replace(still, score=score))

    async def caption(self, turn: common_pb2.TurnContext, user: SmplxClip) -> MotionCaption:
        with self._start("caption", turn=turn, user=user) as call:
            await self._step(call, 0)
            score = 1.0 if self.caption_text else 0.0
            return self._returned(call, MotionCaption(self.caption_text, score, "fake"))

    async def encode_user_motion(
        self, turn: common_pb2.TurnContext, user: SmplxClip, character: SmplxClip
    ) -> UserMotionTokens:
        with self._start("encode_user_motion", turn=turn, user=user, character=character) as call:
            await self._step(call, 0)
            return self._returned(call, self.user_tokens)

    async def decode_motion(
        self,
        turn: common_pb2.TurnContext,
        tokens: AsyncIterator[tuple[list[int], list[int]]],
        deadline_s: float | None = None,
    ) -> BodyMotion | None:
        with self._start("decode_motion", turn=turn, deadline_s=deadline_s) as call:
            await self._step(call, 0)
            async for body, hand in tokens:
                call.received.append((list(body), list(hand)))
                self.journal.changed()
                await self._step(call, len(call.received))
            count = sum(len(body) for body, _ in call.received)
            body = _still(count * FRAMES_PER_TOKEN, "fake decoder") if count else None
            return self._returned(call, body)


class FakeFace(_FakeService):
    """Stands in for ``FaceClient``: neutral face frames at ``FPS`` as long as the audio."""

    service = "face"

    async def animate(
        self,
        turn: common_pb2.TurnContext,
        samples: np.ndarray,
        rate_hz: int,
        timings: list[common_pb2.PhonemeTiming] | None = None,
    ) -> np.ndarray:
        with self._start(
            "animate", turn=turn, samples=samples, rate_hz=rate_hz, timings=timings
        ) as call:
            await self._step(call, 0)
            frames = round(len(samples) / rate_hz * FPS)
            return self._returned(call, np.zeros((frames, CHANNEL_COUNT), np.float32))


def _still(frames: int, source: str) -> BodyMotion:
    return BodyMotion(
        np.zeros((frames, POSE_DIMS), np.float32),
        np.zeros((frames, TRANS_DIMS), np.float32),
        source,
    )


def fake_clients(
    asr: FakeAsr | None = None,
    llm: FakeLlm | None = None,
    tts: FakeTts | None = None,
    motion: FakeMotion | None = None,
    face: FakeFace | None = None,
) -> ServiceClients:
    """The relay's clients with a fake (default knobs unless given) for each service, sharing
    one journal (``journal_of``)."""
    clients = ServiceClients(
        asr=asr or FakeAsr(),
        llm=llm or FakeLlm(),
        tts=tts or FakeTts(),
        motion=motion or FakeMotion(),
        face=face or FakeFace(),
        channels={},
    )
    journal = Journal()
    for fake in (clients.asr, clients.llm, clients.tts, clients.motion, clients.face):
        fake.journal = journal
    return clients


def journal_of(clients: ServiceClients) -> Journal:
    """The journal the fakes of ``fake_clients(...)`` share."""
    return clients.asr.journal
