"""What the relay needs besides a turn: the idle animation and the spoken apologies.

Both come from the services (motion library idle clip, face service on silence, tts voice) and
are cached; when a service is unavailable the relay falls back to a rest pose, a neutral face
and a short tone, and tries again later.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging

import numpy as np

from relay.clients import ServiceClients
from relay.clients.tts import Speech, whole
from relay.errors import TurnError
from relay.turns.base import animate, text_to_motion
from solami import audio
from solami.avatar.face import CHANNEL_COUNT
from solami.avatar.skeleton import POSE_DIMS
from solami.logs import log_event
from solami.v1 import common_pb2

log = logging.getLogger(__name__)

IDLE_S = 4.0
IDLE_PHRASE = "idle breathing"
# Seconds between attempts to fetch an asset that failed.
RETRY_S = 10.0
APOLOGIES = {
    "input": "Sorry, I could not hear that. Could you say it again?",
    "default": "Sorry, give me a moment. Could you say that again?",
}
_TONE_RATE_HZ = 16_000
# Longest wait for an apology not spoken yet (after that the chime plays).
APOLOGY_DEADLINE_S = 3.0
# The services see the relay's own requests under this session id.
RELAY_SESSION_ID = "relay"


@dataclasses.dataclass(frozen=True)
class Idle:
    poses: np.ndarray  # (T, 165)
    trans: np.ndarray  # (T, 3)
    face: np.ndarray  # (T, 61)


# Pelvis height of a standing SMPL-X body, Y-up, in metres.
STANDING_PELVIS_M = 0.95


def rest_idle() -> Idle:
    """A still rest pose, standing, with a neutral face."""
    trans = np.array([[0.0, STANDING_PELVIS_M, 0.0]], np.float32)
    return Idle(
        np.zeros((1, POSE_DIMS), np.float32), trans, np.zeros((1, CHANNEL_COUNT), np.float32)
    )


def _tone() -> bytes:
    """A soft two-note chime, used when no voice is available."""
    t = np.arange(int(0.5 * _TONE_RATE_HZ)) / _TONE_RATE_HZ
    notes = np.where(t < 0.25, 660.0, 494.0)
    envelope = np.minimum(1.0, 20 * t) * np.exp(-4 * t)
    return audio.encode_wav(
        (0.2 * envelope * np.sin(2 * np.pi * notes * t)).astype(np.float32), _TONE_RATE_HZ
    )


class Assets:
    """Cached idle animation and apology audio, fetched from the services."""

    def __init__(self, clients: ServiceClients, character: str = "Samantha") -> None:
        self._clients = clients
        self._character = character
        self._idle: Idle | None = None
        self._idle_retry_at = 0.0
        self._apologies: dict[str, bytes] = {}
        self._lock = asyncio.Lock()

    @property
    def idle_is_fallback(self) -> bool:
        """True while the idle animation is the rest pose (its services were unavailable)."""
        return self._idle is None

    async def idle(self) -> Idle:
        loop = asyncio.get_running_loop()
        async with self._lock:
            if self._idle is None and loop.time() >= self._idle_retry_at:
                self._idle = await self._fetch_idle()
                if self._idle is None:
                    self._idle_retry_at = loop.time() + RETRY_S
        return self._idle or rest_idle()

    async def _fetch_idle(self) -> Idle | None:
        turn = common_pb2.TurnContext(session_id=RELAY_SESSION_ID, turn_id="idle")
        body = await text_to_motion(self._clients, turn, IDLE_PHRASE, IDLE_S)
        if body is None:
            log_event(log, "idle motion unavailable; using the rest pose", logging.WARNING)
            return None
        silence = Speech(np.zeros(int(IDLE_S * _TONE_RATE_HZ), np.float32), _TONE_RATE_HZ)
        face = await animate(self._clients, turn, silence)
        if face is None or not len(face):
            face = np.zeros((len(body.poses), CHANNEL_COUNT), np.float32)
        return Idle(body.poses, body.trans, face)

    async def prepare(self) -> None:
        """Speaks every apology once, ahead of need (retrying while tts is unavailable), so a
        failed turn is answered at once and in the character's voice even when the failure is
        tts itself."""
        while True:
            for key, text in APOLOGIES.items():
                if key not in self._apologies:
                    wav = await self._speak(text)
                    if wav is not None:
                        self._apologies[key] = wav
            if len(self._apologies) == len(APOLOGIES):
                return
            await asyncio.sleep(RETRY_S)

    async def apology(self, stage: str) -> bytes:
        key = "input" if stage == "input" else "default"
        if key not in self._apologies:
            wav = await self._speak(APOLOGIES[key], APOLOGY_DEADLINE_S)
            if wav is None:
                return _tone()
            self._apologies[key] = wav
        return self._apologies[key]

    async def _speak(self, text: str, deadline_s: float | None = None) -> bytes | None:
        turn = common_pb2.TurnContext(session_id=RELAY_SESSION_ID, turn_id="apology")
        chunks = self._clients.tts.synthesize(turn, self._character, text)
        try:
            async with asyncio.timeout(deadline_s):
                speech = await whole(chunks)
        except (TurnError, TimeoutError):
            return None
        return audio.encode_wav(speech.samples, speech.rate_hz)
