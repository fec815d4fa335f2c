"""Turns: one utterance answered by one conversation method, behind one interface.

``turn_for(method, clients)`` gives the ``Turn`` of a session's method; the front doors drive
``Turn.run(TurnInput)`` and ``Turn.history(...)`` without knowing which method it is.
"""

from __future__ import annotations

from relay.clients import ServiceClients
from relay.turns.agent import AgentTurn
from relay.turns.base import Clip, Turn, TurnEvent, TurnInput, TurnLog
from relay.turns.solami import SolamiTurn
from solami.methods import SOLAMI

__all__ = ["Clip", "Turn", "TurnEvent", "TurnInput", "TurnLog", "turn_for"]


def turn_for(method: str, clients: ServiceClients) -> Turn:
    """A new turn of ``method`` ("solami" or an agent method)."""
    return SolamiTurn(clients) if method == SOLAMI else AgentTurn(clients)
