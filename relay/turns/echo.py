"""The echo turn of the original relay's ``Test`` character (``echo_default_character``): the
user's utterance comes back as the reply's audio and the user's body motion as the
character's, unchanged and with no service involved. It checks a headset's or a client's
audio and motion paths end to end without any model.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import numpy as np

from relay.clients.motion import BodyMotion
from relay.clients.tts import Speech
from relay.errors import TurnError
from relay.sessions import Message
from relay.turns.base import Clip, Turn, TurnEvent, TurnInput
from solami import audio
from solami.errors import InvalidInput

# Longest utterance echoed (the headset sends 10 s).
MAX_ECHO_S = 60.0
# BodyMotion.source of an echoed motion.
ECHO_SOURCE = "echo"


class EchoTurn(Turn):
    """Plays the user's own WAV back and their body motion on the character."""

    reads_body = True

    async def run(self, request: TurnInput) -> AsyncIterator[TurnEvent]:
        try:
            samples, rate_hz = audio.decode_wav(request.wav, MAX_ECHO_S)
        except InvalidInput as exc:
            raise TurnError("input", str(exc)) from None
        if request.user_motion is not None and len(request.user_motion[0]):
            poses, trans = request.user_motion
            yield BodyMotion(poses, _in_place(trans), ECHO_SOURCE)
        self.log.mark("first_clip")
        yield Clip(0, "", Speech(samples, rate_hz), None)

    def history(self, spoken: list[Clip], finished: bool) -> list[Message]:
        """An echo says nothing of its own: the session keeps no messages."""
        return []


def _in_place(trans: np.ndarray) -> np.ndarray:
    """Root positions moved so that the clip starts where the character stands: the user's
    steps are kept, their place in the room is not (Y-up: X and Z are the floor)."""
    moved = np.array(trans, dtype=np.float32)
    moved[:, [0, 2]] -= moved[0, [0, 2]]
    return moved
