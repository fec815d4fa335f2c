"""Conversation sessions, kept in Redis so they survive a relay restart and expire when idle.

A session holds the character, the method and the history of what was actually said (the
user's transcript and the part of each reply that was played).
"""

from __future__ import annotations

import dataclasses
import json
import time
import uuid

import redis.asyncio as aioredis

from relay.quest.characters import character_for

# Messages kept in a session (older ones are never sent to a model anyway).
MAX_HISTORY_MESSAGES = 40
_KEY = "solami:session:{}"
_HEADSET_KEY = "solami:headset:{}:session"


@dataclasses.dataclass
class Message:
    role: str  # "user" or "character"
    text: str = ""
    motion: str = ""
    speech_units: list[int] = dataclasses.field(default_factory=list)
    body_ids: list[int] = dataclasses.field(default_factory=list)
    hand_ids: list[int] = dataclasses.field(default_factory=list)
    trans_id: int | None = None


@dataclasses.dataclass
class Session:
    session_id: str
    char_id: str
    character: str
    method: str
    history: list[Message] = dataclasses.field(default_factory=list)
    turns: int = 0
    updated: float = dataclasses.field(default_factory=time.time)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str | bytes) -> Session:
        data = json.loads(text)
        data["history"] = [Message(**m) for m in data.get("history", [])]
        return cls(**data)

    def add(self, *messages: Message) -> None:
        self.history.extend(messages)
        del self.history[:-MAX_HISTORY_MESSAGES]
        self.turns += 1


class SessionStore:
    """Sessions as JSON values with an idle TTL."""

    def __init__(self, client: aioredis.Redis, idle_s: float) -> None:
        self._redis = client
        self._idle_s = idle_s

    async def create(self, char_id: str, method: str, character: str | None = None) -> Session:
        session = Session(uuid.uuid4().hex, char_id, character or character_for(char_id), method)
        await self.save(session)
        return session

    async def get(self, session_id: str) -> Session | None:
        raw = await self._redis.get(_KEY.format(session_id))
        return Session.from_json(raw) if raw else None

    async def save(self, session: Session) -> None:
        session.updated = time.time()
        await self._redis.set(
            _KEY.format(session.session_id), session.to_json(), ex=max(1, int(self._idle_s))
        )

    async def delete(self, session_id: str) -> bool:
        return bool(await self._redis.delete(_KEY.format(session_id)))

    async def current(self, headset: str) -> Session | None:
        """The session a headset was last in (it survives a relay restart)."""
        raw = await self._redis.get(_HEADSET_KEY.format(headset))
        return await self.get(raw.decode()) if raw else None

    async def set_current(self, headset: str, session: Session) -> None:
        await self._redis.set(_HEADSET_KEY.format(headset), session.session_id)

    async def count(self) -> int:
        return sum([1 async for _ in self._redis.scan_iter(_KEY.format("*"), count=500)])
