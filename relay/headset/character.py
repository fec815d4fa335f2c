"""Which character a headset shows: its ``char_id``, rig, session and animation timeline.

A change of ``char_id`` (read from the headset's Redis) switches rig and session and cancels
the answer in progress; a headset that comes back resumes its last session for that character
(and the relay's method).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from relay.animation import Animator
from relay.assets import Assets
from relay.metrics import RelayMetrics
from relay.quest import keys
from relay.quest.characters import DEFAULT_CHAR_ID, character_for
from relay.quest.rig import SMPLX_CHAR_ID, Rig
from relay.sessions import Session, SessionStore
from relay.settings import HeadsetConfig, RelaySettings
from solami.logs import log_event

log = logging.getLogger(__name__)


class CharacterState:
    """The headset's current character, rig, session and animator."""

    def __init__(
        self,
        config: HeadsetConfig,
        redis_client: aioredis.Redis,
        store: SessionStore,
        assets: Assets,
        settings: RelaySettings,
        metrics: RelayMetrics,
        on_change: Callable[[], Awaitable[None]],
    ) -> None:
        self._config = config
        self._redis = redis_client
        self._store = store
        self._assets = assets
        self._settings = settings
        self._metrics = metrics
        # Called before the session changes (cancels the answer in progress).
        self._on_change = on_change
        self.char_id = ""
        self.session: Session | None = None
        self.rig: Rig | None = None
        self.animator: Animator | None = None

    async def sync(self, force: bool = False) -> None:
        """Follows the headset's ``char_id``; ``force`` reloads even when it is unchanged."""
        try:
            char_id = await self._read_char_id()
        except RedisError:
            if self.session is not None:
                return
            char_id = DEFAULT_CHAR_ID  # Redis is down at start: the headset's default
        if char_id == self.char_id and not force:
            return
        try:
            character = character_for(char_id)
        except ValueError as exc:
            self._metrics.errors_total.labels("char_id").inc()
            log_event(
                log, "bad char_id", logging.WARNING, headset=self._config.name, error=str(exc)
            )
            if self.rig is not None:
                self.char_id = char_id  # keep the current character; do not retry each poll
                return
            char_id, character = SMPLX_CHAR_ID, character_for(SMPLX_CHAR_ID)
        rig = self._load_rig(char_id)
        self.char_id = char_id
        self.rig = rig
        await self._on_change()
        self.session = await self._resume_or_create(char_id, character)
        await self.refresh_idle(force=True)
        log_event(
            log,
            "character",
            headset=self._config.name,
            char_id=char_id,
            session_id=self.session.session_id,
            rig=rig.char_id,
        )

    async def refresh_idle(self, force: bool = False) -> None:
        """Takes the idle animation from the services once they can give it (the rest pose
        stands in until then)."""
        if not force and not self._assets.idle_is_fallback and self.animator is not None:
            return
        idle = await self._assets.idle()
        if self.animator is None:
            self.animator = Animator(idle.poses, idle.trans, idle.face, self._settings.blend_s)
        else:
            self.animator.set_idle(idle.poses, idle.trans, idle.face)

    async def _read_char_id(self) -> str:
        raw = await self._redis.get(self._config.key(keys.CHAR_ID))
        return raw.decode() if isinstance(raw, bytes) else (raw or DEFAULT_CHAR_ID)

    def _load_rig(self, char_id: str) -> Rig:
        """``char_id``'s rig; without usable rig data the body is sent on the SMPL-X rig (the
        character keeps its persona and voice)."""
        try:
            return Rig.load(self._settings.rig_data, char_id)
        except ValueError as exc:
            self._metrics.errors_total.labels("rig").inc()
            log_event(
                log,
                "rig unavailable; sending the SMPL-X rig",
                logging.WARNING,
                headset=self._config.name,
                char_id=char_id,
                error=str(exc),
            )
            return Rig.load(None, SMPLX_CHAR_ID)

    async def _resume_or_create(self, char_id: str, character: str) -> Session:
        try:
            session = await self._store.current(self._config.name)
            # A relay restarted with another method starts a session of that method.
            if (
                session is not None
                and session.char_id == char_id
                and session.method == self._settings.method
            ):
                return session
            session = await self._store.create(char_id, self._settings.method, character)
            await self._store.set_current(self._config.name, session)
            return session
        except RedisError:
            self._metrics.errors_total.labels("redis").inc()
            return Session(uuid.uuid4().hex, char_id, character, self._settings.method)
