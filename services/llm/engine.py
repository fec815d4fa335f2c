"""The llm engine: builds the prompt for a method, generates with the chosen backend and turns
the raw stream into typed events (text, sentences, speech units, motion tokens, end)."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator

from services.llm import prompt as prompts
from services.llm.backends.base import GenerationStats, Sampling, TextGenerator
from services.llm.backends.echo import EchoGenerator
from services.llm.backends.llama_cpp import LlamaCppGenerator
from services.llm.backends.transformers import TransformersGenerator
from services.llm.backends.vllm import VllmGenerator
from services.llm.characters import CharacterBook
from services.llm.grammar import agent_reply_grammar
from services.llm.motions import load_phrases
from services.llm.parsing import AgentReplyParser, parse_solami
from services.llm.prompt import Tokens, Turn
from services.llm.settings import LlmSettings
from services.llm.vocabulary import SPEECH_ID
from solami.engine import Engine
from solami.errors import InvalidInput
from solami.methods import (
    AGENT_METHODS,
    DLP_RETRIEVAL,
    METHOD_INFO,
    METHODS,
    SOLAMI,
    unknown_method,
)

# Speech units gathered before a chunk is released (0.5 s of speech at 50 units/s).
UNIT_CHUNK = 25
# Motion token pairs gathered before a chunk is released (16 frames).
MOTION_CHUNK = 4
# The original SOLAMI server's sampling for the end-to-end model.
SOLAMI_SAMPLING = Sampling(
    temperature=0.6, top_p=0.9, max_new_tokens=600, min_new_tokens=10, stop=("<eos>", "[Human]")
)
# The original agent baseline's sampling (Llama-2 chat through vLLM).
AGENT_SAMPLING = Sampling(temperature=0.6, top_p=0.9, max_new_tokens=150, presence_penalty=1.0)


@dataclasses.dataclass(frozen=True)
class Request:
    character: str
    method: str
    history: tuple[Turn, ...]
    user: Turn
    # None = the method's defaults.
    sampling: Sampling | None = None
    # Agent methods with motion: a caption of the user's motion for the new user message's
    # <motion> slot ("" = the user message's own motion text).
    motion_caption: str = ""


@dataclasses.dataclass(frozen=True)
class Started:
    """First event: the prompt is built (and accepted)."""

    prompt_tokens: int
    dropped_messages: int
    # The character played (the default one when the request named none).
    character: str


@dataclasses.dataclass(frozen=True)
class TextDelta:
    text: str


@dataclasses.dataclass(frozen=True)
class SentenceReady:
    index: int
    text: str


@dataclasses.dataclass(frozen=True)
class SpeechUnits:
    start: int
    ids: tuple[int, ...]


@dataclasses.dataclass(frozen=True)
class MotionTokens:
    start: int
    body: tuple[int, ...]
    hand: tuple[int, ...]


@dataclasses.dataclass(frozen=True)
class Finished:
    finish_reason: str
    prompt_tokens: int
    cached_prompt_tokens: int
    completion_tokens: int
    attempts: int
    first_token_ms: int
    total_ms: int
    dropped_messages: int
    speech: str = ""
    motion: str = ""
    tokens: Tokens = dataclasses.field(default_factory=Tokens)


Event = Started | TextDelta | SentenceReady | SpeechUnits | MotionTokens | Finished


def _finished(
    stats: GenerationStats,
    attempt: int,
    first_token_ms: int,
    started: float,
    dropped: int,
    speech: str = "",
    motion: str = "",
    tokens: Tokens | None = None,
) -> Finished:
    """The last event of a generation whose successful (or last) try was ``attempt``."""
    return Finished(
        stats.finish_reason or "stop",
        stats.prompt_tokens,
        stats.cached_prompt_tokens,
        stats.completion_tokens,
        attempt,
        first_token_ms,
        _ms_since(started),
        dropped,
        speech,
        motion,
        tokens if tokens is not None else Tokens(),
    )


def make_backend(settings: LlmSettings) -> TextGenerator:
    """The backend named by ``settings.backend`` (it imports its library when it loads)."""
    if settings.backend == "vllm":
        return VllmGenerator(settings)
    if settings.backend == "transformers":
        return TransformersGenerator(settings)
    if settings.backend == "echo":
        return EchoGenerator()
    return LlamaCppGenerator(settings)


class LlmEngine(Engine):
    """Stateless turn generation: everything about the conversation comes with the request."""

    def __init__(self, settings: LlmSettings, backend: TextGenerator | None = None) -> None:
        self.settings = settings
        self.backend = backend or make_backend(settings)
        self.name = self.backend.name
        self.characters = CharacterBook()
        self._set_motions(load_phrases(None))

    def _set_motions(self, motions: tuple[str, ...]) -> None:
        self.prompt_style = prompts.AgentPromptStyle(self.settings.agent_prompt, motions)
        # Agent-method grammars by whether the method writes a motion ("" = none).
        self._grammars = {
            with_motion: agent_reply_grammar(with_motion, motions)
            if self.settings.agent_grammar
            else ""
            for with_motion in (False, True)
        }

    def load(self) -> None:
        self.characters = CharacterBook.load(self.settings.characters_file)
        self._set_motions(load_phrases(self.settings.motions_file))
        self.backend.load()

    def warmup(self) -> None:
        asyncio.run(self.warmup_async())

    async def warmup_async(self) -> None:
        # Agent models warm up on the relay's default method and character, so the first turn
        # of a session finds the system prompt (and the examples) in the KV cache.
        method = SOLAMI if self.backend.supports_solami else DLP_RETRIEVAL
        user = Turn("user", text="Hello!", tokens=Tokens(speech=(1, 2), body=(3,), hand=(4,)))
        request = Request(
            "Samantha",
            method,
            (),
            user,
            dataclasses.replace(
                SOLAMI_SAMPLING if method == SOLAMI else AGENT_SAMPLING, max_new_tokens=4
            ),
        )

        async for _ in self.generate(request, warmup=True):
            pass

    def shutdown(self) -> None:
        self.backend.shutdown()

    @property
    def healthy(self) -> bool:
        """The backend's own health where it reports one (vLLM's engine loop can die)."""
        return getattr(self.backend, "healthy", True)

    @property
    def methods(self) -> tuple[str, ...]:
        return METHODS if self.backend.supports_solami else AGENT_METHODS

    def _check(self, request: Request) -> None:
        if request.method not in METHODS:
            raise InvalidInput(unknown_method(request.method))
        if request.method == SOLAMI and not self.backend.supports_solami:
            raise InvalidInput(
                "method 'solami' needs a SOLAMI model (with its speech/motion vocabulary); "
                f"this service runs {self.name} without it: use {', '.join(AGENT_METHODS)}"
            )
        self.characters.get(request.character)
        user = request.user
        if user.role != "user":
            raise InvalidInput("the new message must be the user's")
        if request.method == SOLAMI:
            if not user.tokens.speech and not user.tokens.body:
                raise InvalidInput("the user message has no speech units or motion tokens")
        elif not user.text.strip() and not user.motion.strip():
            raise InvalidInput("the user message is empty: no text and no motion")
        if len(user.text) > self.settings.max_user_chars:
            raise InvalidInput(
                f"the user message has {len(user.text)} characters; the limit is "
                f"{self.settings.max_user_chars}"
            )
        for turn in (*request.history, user):
            prompts.check_tokens(turn.tokens)

    async def generate(self, request: Request, warmup: bool = False) -> AsyncIterator[Event]:
        """The reply's events; the last one is ``Finished``."""
        if not warmup:
            self._check(request)
        character = self.characters.get(request.character)
        started = time.perf_counter()
        context_tokens = self.settings.context_tokens
        if request.method == SOLAMI:
            prompt, prompt_tokens, dropped = await asyncio.to_thread(
                prompts.build_solami_prompt,
                character,
                request.history,
                request.user,
                self.backend.count_tokens,
                prompts.solami_prompt_budget(context_tokens),
            )
            stream = self._solami(prompt, request.sampling or SOLAMI_SAMPLING, started, dropped)
        else:
            with_motion = METHOD_INFO[request.method].motion_text
            sampling = request.sampling or AGENT_SAMPLING
            grammar = self._grammars[with_motion]
            if grammar and getattr(self.backend, "supports_grammar", False):
                sampling = dataclasses.replace(sampling, grammar=grammar)
            prompt, prompt_tokens, dropped = await asyncio.to_thread(
                prompts.build_agent_prompt,
                character,
                request.history,
                request.user,
                with_motion,
                self.backend.chat_prompt,
                self.backend.count_tokens,
                context_tokens,
                sampling.max_new_tokens,
                request.motion_caption,
                self.prompt_style,
            )
            stream = self._agent(prompt, sampling, with_motion, started, dropped)
        yield Started(prompt_tokens, dropped, character.name)
        async for event in stream:
            yield event

    async def _agent(
        self, prompt: str, sampling: Sampling, with_motion: bool, started: float, dropped: int
    ) -> AsyncIterator[Event]:
        first_token_ms = 0
        attempts = self.settings.agent_max_attempts
        for attempt in range(1, attempts + 1):
            stats = GenerationStats()
            parser = AgentReplyParser(with_motion)
            raw = ""
            pieces = self.backend.stream(prompt, sampling, stats)
            try:
                async for piece in pieces:
                    first_token_ms = first_token_ms or _ms_since(started)
                    raw += piece
                    yield TextDelta(piece)
                    for sentence in parser.feed(piece):
                        yield SentenceReady(len(parser.reply.sentences) - 1, sentence)
                    if parser.reply.sentences and _agent_reply_complete(raw, parser, with_motion):
                        stats.finish_reason = "stop"
                        break
            finally:
                await pieces.aclose()
            for sentence in parser.finish():
                yield SentenceReady(len(parser.reply.sentences) - 1, sentence)
            reply = parser.reply
            if reply.sentences or attempt == attempts:
                yield _finished(
                    stats, attempt, first_token_ms, started, dropped, reply.speech, reply.motion
                )
                return

    async def _solami(
        self, prompt: str, sampling: Sampling, started: float, dropped: int
    ) -> AsyncIterator[Event]:
        first_token_ms = 0
        for attempt in range(1, self.settings.max_attempts + 1):
            stats = GenerationStats()
            raw = ""
            held: list[str] = []  # text of this try, released once the try is known good
            sent = _Released()
            pieces = self.backend.stream(prompt, sampling, stats)
            try:
                async for piece in pieces:
                    first_token_ms = first_token_ms or _ms_since(started)
                    raw += piece
                    if not sent.committed:
                        held.append(piece)
                        if not _solami_reply_started(raw):
                            continue
                        sent.committed = True
                        piece = "".join(held)
                    yield TextDelta(piece)
                    for event in sent.new_events(parse_solami(raw), final=False):
                        yield event
            finally:
                await pieces.aclose()
            tokens = parse_solami(raw)
            complete = bool(tokens.speech and tokens.body)
            if complete:
                if not sent.committed:
                    sent.committed = True
                    yield TextDelta(raw)
                for event in sent.new_events(tokens, final=True):
                    yield event
            # A complete reply ends the turn; so does a streamed or last try, complete or not.
            if complete or sent.committed or attempt == self.settings.max_attempts:
                yield _finished(stats, attempt, first_token_ms, started, dropped, tokens=tokens)
                return


class _Released:
    """How much of a SOLAMI reply's ids have been sent as chunks."""

    def __init__(self) -> None:
        self.committed = False
        self.units = 0
        self.motion = 0

    def new_events(self, tokens: Tokens, final: bool) -> list[Event]:
        events: list[Event] = []
        motion_ready = min(len(tokens.body), len(tokens.hand))
        if motion_ready - self.motion >= (1 if final else MOTION_CHUNK):
            events.append(
                MotionTokens(
                    self.motion,
                    tokens.body[self.motion : motion_ready],
                    tokens.hand[self.motion : motion_ready],
                )
            )
            self.motion = motion_ready
        if len(tokens.speech) - self.units >= (1 if final else UNIT_CHUNK):
            events.append(SpeechUnits(self.units, tokens.speech[self.units :]))
            self.units = len(tokens.speech)
        return events


def _solami_reply_started(raw: str) -> bool:
    """A try is good once its body block is closed with ids and its first speech unit came."""
    tokens = parse_solami(raw)
    return bool(tokens.body) and "<eobo>" in raw and SPEECH_ID.search(raw) is not None


def _agent_reply_complete(raw: str, parser: AgentReplyParser, with_motion: bool) -> bool:
    speech_done = "</speech>" in raw or parser.full
    untagged = "<speech>" not in raw  # a model ignoring the format will not tag a motion either
    return speech_done and (not with_motion or "</motion>" in raw or untagged)


def _ms_since(started: float) -> int:
    return int((time.perf_counter() - started) * 1000)
