"""Speech timing shared by the services that produce it (tts) and consume it (face)."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Phoneme:
    """One phoneme (IPA, as eSpeak NG writes it) or a pause (empty symbol); times in seconds
    relative to the turn start."""

    symbol: str
    start_s: float
    end_s: float
