"""Typed client of the llm service: a conversation -> the character's reply, streamed.

With ``LlmReplicas`` the client sends each session's turns to that session's replica (where its
prompt prefix is cached) and sets a replica aside when a call to it fails UNAVAILABLE.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Sequence

import grpc

from relay.clients.base import ServiceClient
from relay.clients.routing import LlmReplicas
from relay.metrics import RelayMetrics
from relay.sessions import Message
from solami.methods import METHOD_ENUMS, SOLAMI
from solami.v1 import common_pb2, llm_pb2

_ROLES = {"user": llm_pb2.ROLE_USER, "character": llm_pb2.ROLE_CHARACTER}


@dataclasses.dataclass(frozen=True)
class Sentence:
    """A finished sentence of the reply's speech (agent methods)."""

    text: str


@dataclasses.dataclass(frozen=True)
class SpeechUnits:
    """Newly generated speech units (solami)."""

    ids: list[int]


@dataclasses.dataclass(frozen=True)
class MotionTokens:
    """Newly generated motion tokens, body and hand paired by position (solami)."""

    body_ids: list[int]
    hand_ids: list[int]


@dataclasses.dataclass(frozen=True)
class Reply:
    """The whole parsed reply, last: what enters the session history."""

    message: Message
    # Prompt length in tokens, and how many of them the replica had cached.
    prompt_tokens: int = 0
    cached_prompt_tokens: int = 0
    # Milliseconds from the request to the first generated token, as the service measured.
    first_token_ms: int = 0


ReplyEvent = Sentence | SpeechUnits | MotionTokens | Reply


def message_to_pb(message: Message, tokens: bool) -> llm_pb2.Message:
    """A history message as the contract carries it: text for the agent methods, ``tokens``
    for solami."""
    if not tokens:
        return llm_pb2.Message(
            role=_ROLES[message.role], text=message.text, motion_text=message.motion
        )
    ids = llm_pb2.SolamiTokens(
        speech_units=message.speech_units, body_ids=message.body_ids, hand_ids=message.hand_ids
    )
    if message.trans_id is not None:
        ids.trans_id = message.trans_id
    return llm_pb2.Message(role=_ROLES[message.role], tokens=ids)


def _reply_message(reply: llm_pb2.ParsedReply) -> Message:
    tokens = reply.tokens
    return Message(
        "character",
        text=reply.speech,
        motion=reply.motion,
        speech_units=list(tokens.speech_units),
        body_ids=list(tokens.body_ids),
        hand_ids=list(tokens.hand_ids),
    )


class LlmClient(ServiceClient):
    service = "llm"

    def __init__(
        self,
        stub,
        deadline_s: float,
        metrics: RelayMetrics,
        replicas: LlmReplicas | None = None,
    ) -> None:
        """``stub`` serves every turn, unless ``replicas`` is given (then ``stub`` is unused and
        may be None): each session's turns go to its replica."""
        super().__init__(stub, deadline_s, metrics)
        self.replicas = replicas

    async def generate(
        self,
        turn: common_pb2.TurnContext,
        character: str,
        method: str,
        history: Sequence[Message],
        user: Message,
    ) -> AsyncIterator[ReplyEvent]:
        """The character's reply to ``user`` after ``history``, event by event, ending with
        the whole ``Reply``."""
        tokens = method == SOLAMI
        request = llm_pb2.GenerateRequest(
            turn=turn,
            character=character,
            method=METHOD_ENUMS[method],
            history=[message_to_pb(m, tokens) for m in history],
            user=message_to_pb(user, tokens),
        )
        stub, failed = self._stub, None
        if self.replicas is not None:
            replica = await self.replicas.pick(turn.session_id)
            stub = replica.stub

            def failed(code: grpc.StatusCode) -> None:
                if code == grpc.StatusCode.UNAVAILABLE:
                    replica.mark_down()

        call = stub.Generate(request, timeout=self.deadline_s)
        async for event in self.stream("Generate", call, failed):
            kind = event.WhichOneof("event")
            if kind == "sentence":
                yield Sentence(event.sentence.text)
            elif kind == "speech_units":
                yield SpeechUnits(list(event.speech_units.ids))
            elif kind == "motion_tokens":
                chunk = event.motion_tokens
                yield MotionTokens(list(chunk.body_ids), list(chunk.hand_ids))
            elif kind == "end":
                end = event.end
                yield Reply(
                    _reply_message(end.reply),
                    end.prompt_tokens,
                    end.cached_prompt_tokens,
                    end.first_token_ms,
                )
