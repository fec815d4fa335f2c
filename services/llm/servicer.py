"""LlmService: proto <-> domain conversion around the llm engine."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
from prometheus_client import Counter, Histogram

from services.llm import engine as e
from services.llm.backends.base import Sampling
from services.llm.prompt import Tokens, Turn
from solami.errors import InvalidInput
from solami.methods import METHOD_ENUMS, METHOD_NAMES, SOLAMI
from solami.metrics import ServiceMetrics
from solami.v1 import llm_pb2, llm_pb2_grpc

_ROLES = {llm_pb2.ROLE_USER: "user", llm_pb2.ROLE_CHARACTER: "character"}
_FINISH = {
    "stop": llm_pb2.FINISH_REASON_STOP,
    "length": llm_pb2.FINISH_REASON_LENGTH,
    "cancelled": llm_pb2.FINISH_REASON_CANCELLED,
}
TTFT_BUCKETS_S = (0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)


def method_name(value: int) -> str:
    if value not in METHOD_NAMES:
        accepted = ", ".join(llm_pb2.ConversationMethod.Name(v) for v in METHOD_NAMES)
        raise InvalidInput(f"method must be set to one of {accepted}, got {value}")
    return METHOD_NAMES[value]


def turn_from_proto(message: llm_pb2.Message, what: str) -> Turn:
    if message.role not in _ROLES:
        raise InvalidInput(f"{what} has no role (USER or CHARACTER)")
    t = message.tokens
    tokens = Tokens(
        tuple(t.speech_units),
        tuple(t.body_ids),
        tuple(t.hand_ids),
        t.trans_id if t.HasField("trans_id") else None,
    )
    return Turn(_ROLES[message.role], message.text, message.motion_text, tokens)


def sampling_from_proto(params: llm_pb2.SamplingParams, method: str) -> Sampling | None:
    if not params.ByteSize():
        return None
    base = e.SOLAMI_SAMPLING if method == SOLAMI else e.AGENT_SAMPLING
    if params.temperature < 0 or not 0 <= params.top_p <= 1:
        raise InvalidInput("temperature must be >= 0 and top_p in (0, 1]")
    return Sampling(
        temperature=params.temperature or base.temperature,
        top_p=params.top_p or base.top_p,
        max_new_tokens=params.max_new_tokens or base.max_new_tokens,
        min_new_tokens=params.min_new_tokens or base.min_new_tokens,
        presence_penalty=base.presence_penalty,
        seed=params.seed,
        stop=base.stop,
    )


def event_to_proto(event: e.Event, turn, header: llm_pb2.GenerateHeader) -> llm_pb2.GenerateEvent:
    """``event`` as a message; ``header`` is completed by the ``Started`` event."""
    if isinstance(event, e.Started):
        header.prompt_tokens = event.prompt_tokens
        header.dropped_messages = event.dropped_messages
        header.character = event.character
        return llm_pb2.GenerateEvent(turn=turn, header=header)
    if isinstance(event, e.TextDelta):
        return llm_pb2.GenerateEvent(turn=turn, text=llm_pb2.TextDelta(text=event.text))
    if isinstance(event, e.SentenceReady):
        return llm_pb2.GenerateEvent(
            turn=turn, sentence=llm_pb2.Sentence(index=event.index, text=event.text)
        )
    if isinstance(event, e.SpeechUnits):
        return llm_pb2.GenerateEvent(
            turn=turn,
            speech_units=llm_pb2.SpeechUnitChunk(start_index=event.start, ids=event.ids),
        )
    if isinstance(event, e.MotionTokens):
        return llm_pb2.GenerateEvent(
            turn=turn,
            motion_tokens=llm_pb2.MotionTokenChunk(
                start_index=event.start, body_ids=event.body, hand_ids=event.hand
            ),
        )
    tokens = llm_pb2.SolamiTokens(
        speech_units=event.tokens.speech, body_ids=event.tokens.body, hand_ids=event.tokens.hand
    )
    end = llm_pb2.GenerateEnd(
        finish_reason=_FINISH.get(event.finish_reason, llm_pb2.FINISH_REASON_UNSPECIFIED),
        prompt_tokens=event.prompt_tokens,
        cached_prompt_tokens=event.cached_prompt_tokens,
        completion_tokens=event.completion_tokens,
        attempts=event.attempts,
        first_token_ms=event.first_token_ms,
        total_ms=event.total_ms,
        dropped_messages=event.dropped_messages,
        reply=llm_pb2.ParsedReply(speech=event.speech, motion=event.motion, tokens=tokens),
    )
    return llm_pb2.GenerateEvent(turn=turn, end=end)


class LlmMetrics:
    def __init__(self, metrics: ServiceMetrics) -> None:
        self.first_token_seconds = Histogram(
            "solami_llm_time_to_first_token_seconds",
            "Time from request to the first generated token, by method.",
            ("method",),
            buckets=TTFT_BUCKETS_S,
            registry=metrics.registry,
        )
        self.tokens_total = Counter(
            "solami_llm_generated_tokens_total",
            "Tokens generated, by method.",
            ("method",),
            registry=metrics.registry,
        )
        self.attempts_total = Counter(
            "solami_llm_attempts_total",
            "Generation tries, by method (more than requests when replies are retried).",
            ("method",),
            registry=metrics.registry,
        )


class LlmServicer(llm_pb2_grpc.LlmServiceServicer):
    def __init__(self, engine: e.LlmEngine, metrics: ServiceMetrics) -> None:
        self._engine = engine
        self._metrics = LlmMetrics(metrics)

    async def Generate(
        self, request: llm_pb2.GenerateRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[llm_pb2.GenerateEvent]:
        method = method_name(request.method)
        if not request.HasField("user"):
            raise InvalidInput("the request has no user message")
        domain = e.Request(
            character=request.character,
            method=method,
            history=tuple(
                turn_from_proto(m, f"history message {i}") for i, m in enumerate(request.history)
            ),
            user=turn_from_proto(request.user, "the user message"),
            sampling=sampling_from_proto(request.sampling, method),
        )
        header = llm_pb2.GenerateHeader(engine=self._engine.name, method=request.method)
        async for event in self._engine.generate(domain):
            if isinstance(event, e.Finished):
                self._metrics.first_token_seconds.labels(method).observe(
                    event.first_token_ms / 1000
                )
                self._metrics.tokens_total.labels(method).inc(event.completion_tokens)
                self._metrics.attempts_total.labels(method).inc(event.attempts)
            yield event_to_proto(event, request.turn, header)

    async def ListCharacters(
        self, request: llm_pb2.ListCharactersRequest, context: grpc.aio.ServicerContext
    ) -> llm_pb2.ListCharactersResponse:
        return llm_pb2.ListCharactersResponse(
            characters=[
                llm_pb2.CharacterInfo(name=c.name, description=c.description)
                for c in self._engine.characters.characters
            ],
            methods=[METHOD_ENUMS[m] for m in self._engine.methods],
            engine=self._engine.name,
        )
