"""What every turn shares: its input, the events it yields, its log, and the ``Turn`` interface
that the front doors (headset WebSocket, HTTP compatibility API) drive without knowing the
method.

A turn answers one utterance: ``run`` yields ``Clip`` (one spoken sentence or speech chunk with
its face) and ``BodyMotion`` events in the order they should reach the user, as soon as each is
ready. The front door decides when to play them; ``history`` then says what the session keeps
(only what was actually played).
"""

from __future__ import annotations

import abc
import dataclasses
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable
from typing import TypeVar

import numpy as np

from relay.clients import ServiceClients
from relay.clients.motion import BodyMotion, SmplxClip
from relay.clients.tts import Speech
from relay.errors import TurnError
from relay.sessions import Message, Session
from solami import audio
from solami.avatar.rates import FPS
from solami.logs import log_event
from solami.v1 import common_pb2

log = logging.getLogger(__name__)
T = TypeVar("T")


# Characters of a turn id (hex): short enough for logs, unique among a session's turns.
TURN_ID_CHARS = 12


def new_turn_id() -> str:
    return uuid.uuid4().hex[:TURN_ID_CHARS]


@dataclasses.dataclass(frozen=True)
class TurnInput:
    """One utterance of the user and what came with it."""

    session: Session
    turn_id: str
    # The utterance as the headset sends it: one WAV.
    wav: bytes
    # The user's body since the last turn, Y-up SMPL-X (methods that read it).
    user_motion: SmplxClip | None = None
    # The character's current pose, Y-up SMPL-X (one frame).
    character_pose: SmplxClip | None = None

    @property
    def context(self) -> common_pb2.TurnContext:
        return common_pb2.TurnContext(session_id=self.session.session_id, turn_id=self.turn_id)


@dataclasses.dataclass(frozen=True)
class Clip:
    """One piece of the reply to play: its audio and the face that goes with it."""

    index: int
    text: str
    speech: Speech
    # (frames, 61) at 30 fps from the clip's start; None when the face service failed.
    face: np.ndarray | None

    @property
    def samples(self) -> np.ndarray:
        return self.speech.samples

    @property
    def rate_hz(self) -> int:
        return self.speech.rate_hz

    @property
    def duration_s(self) -> float:
        return self.speech.duration_s

    def cut(self, heard_s: float) -> Clip:
        """The part of this clip heard when playback stopped ``heard_s`` seconds in: its audio
        up to there and its words in proportion (the speech carries phoneme, not word,
        timings), rounded to the nearest word."""
        heard_s = min(max(heard_s, 0.0), self.duration_s)
        fraction = heard_s / self.duration_s if self.duration_s else 0.0
        words = self.text.split()
        heard = round(self.rate_hz * heard_s)
        speech = dataclasses.replace(self.speech, samples=self.samples[:heard])
        face = None if self.face is None else self.face[: round(heard_s * FPS)]
        return dataclasses.replace(
            self, text=" ".join(words[: round(fraction * len(words))]), speech=speech, face=face
        )

    def wav(self, pad_s: float = 0.0) -> bytes:
        """The clip as a WAV, followed by ``pad_s`` seconds of silence."""
        pad = np.zeros(round(pad_s * self.rate_hz), np.float32)
        return audio.encode_wav(np.concatenate([self.samples, pad]), self.rate_hz)


TurnEvent = Clip | BodyMotion


@dataclasses.dataclass
class TurnLog:
    """What happened in a turn: transcript, reply parts, per-stage milliseconds."""

    user_text: str = ""
    # Caption of the user's body motion (methods that read it).
    user_motion_text: str = ""
    motion_text: str = ""
    sentences: list[str] = dataclasses.field(default_factory=list)
    stages_ms: dict[str, float] = dataclasses.field(default_factory=dict)
    # A reply cut while playing: ms from the interruption to the silence sent to the headset.
    cut_to_silence_ms: float | None = None
    started: float = dataclasses.field(default_factory=time.perf_counter)

    def mark(self, stage: str) -> None:
        """Records when ``stage`` was first done, in ms from the turn's start."""
        self.stages_ms.setdefault(stage, round((time.perf_counter() - self.started) * 1000, 1))


class Turn(abc.ABC):
    """One method's way of answering an utterance."""

    # Whether the method reads the user's body and the character's pose (``TurnInput``).
    reads_body = False

    def __init__(self, clients: ServiceClients) -> None:
        self._clients = clients
        self.log = TurnLog()

    @abc.abstractmethod
    def run(self, request: TurnInput) -> AsyncIterator[TurnEvent]:
        """The reply's clips and body motion, in order, as soon as each is ready. Raises
        ``TurnError`` when a stage the reply cannot do without fails."""

    @abc.abstractmethod
    def history(self, spoken: list[Clip], finished: bool) -> list[Message]:
        """The messages the session keeps: the user's and only what of the reply was played
        (``spoken``); ``finished`` is False when the turn failed or was interrupted."""


async def animate(
    clients: ServiceClients,
    turn: common_pb2.TurnContext,
    speech: Speech,
    turn_log: TurnLog | None = None,
) -> np.ndarray | None:
    """Face frames for ``speech``; None when the face service failed (the idle face plays)."""
    call = clients.face.animate(turn, speech.samples, speech.rate_hz, speech.timings)
    return await _optional("face", call, turn_log)


async def text_to_motion(
    clients: ServiceClients,
    turn: common_pb2.TurnContext,
    phrase: str,
    seconds: float,
    turn_log: TurnLog | None = None,
    generate: bool = False,
) -> BodyMotion | None:
    """A motion for ``phrase``, from the motion library or, with ``generate``, from the motion
    service's generator where it has one; None when the motion service failed (idle plays)."""
    call = clients.motion.text_to_motion(turn, phrase, seconds, generate=generate)
    return await _optional("motion", call, turn_log)


async def caption_motion(
    clients: ServiceClients,
    turn: common_pb2.TurnContext,
    user: SmplxClip,
    turn_log: TurnLog | None = None,
) -> str:
    """A caption of the user's body motion; "" when the motion service has nothing confident
    to say or failed (the turn goes on without it)."""
    caption = await _optional("caption", clients.motion.caption(turn, user), turn_log)
    return caption.text if caption is not None else ""


async def _optional(stage: str, call: Awaitable[T], turn_log: TurnLog | None) -> T | None:
    """The result of a stage the reply can do without, or None (logged) when it failed."""
    try:
        result = await call
    except TurnError as exc:
        log_event(log, f"{stage} failed", logging.WARNING, reason=exc.reason)
        return None
    if turn_log is not None:
        turn_log.mark(stage)
    return result
