"""Turns: one utterance answered by one conversation method, behind one interface.

``turn_for(session, clients, speech_gesture)`` gives the ``Turn`` of a session's method (or
the echo of the ``Test`` character); the front doors drive ``Turn.run(TurnInput)`` and
``Turn.history(...)`` without knowing which method it is.
"""

from __future__ import annotations

from relay.clients import ServiceClients
from relay.quest.characters import ECHO_CHARACTER
from relay.sessions import Session
from relay.turns.agent import AgentTurn
from relay.turns.base import Clip, Turn, TurnEvent, TurnInput, TurnLog
from relay.turns.echo import EchoTurn
from relay.turns.solami import SolamiTurn
from solami.methods import METHOD_INFO, SOLAMI

__all__ = ["Clip", "Turn", "TurnEvent", "TurnInput", "TurnLog", "turn_for"]


def turn_for(session: Session, clients: ServiceClients, speech_gesture: bool = True) -> Turn:
    """A new turn for ``session``: the echo for the ``Test`` character, else its method's
    ("solami" or an agent method; ``speech_gesture``: llm+speech replies get a talking
    gesture)."""
    if session.character == ECHO_CHARACTER:
        return EchoTurn(clients)
    if session.method == SOLAMI:
        return SolamiTurn(clients)
    return AgentTurn(clients, METHOD_INFO[session.method], speech_gesture)
