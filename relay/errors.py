"""The one error a turn knows: a stage it cannot do without failed."""

from __future__ import annotations


class TurnError(Exception):
    """A stage of the turn failed.

    ``stage`` is the service that failed (``asr``, ``llm``, ``tts``, ``motion``, ``face``),
    ``input`` when the user's own input was refused (bad audio), or ``internal``.
    """

    def __init__(self, stage: str, reason: str) -> None:
        super().__init__(f"{stage}: {reason}")
        self.stage = stage
        self.reason = reason
