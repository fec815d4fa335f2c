"""The character's frames for the headset: one ``aiStream`` entry per frame at ``FPS``, idle or
answering, body retargeted onto the character's rig plus the face blendshapes."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from relay.headset.character import CharacterState
from relay.metrics import RelayMetrics
from relay.quest import keys
from relay.quest.face import face_fields
from relay.settings import HeadsetConfig
from solami.avatar.rates import FPS

log = logging.getLogger(__name__)

# Pause of the publisher after a Redis error: doubles from the first to the longest.
FIRST_BACKOFF_S = 0.1
MAX_BACKOFF_S = 5.0
# Pause after an unexpected error (the character keeps moving after it).
ERROR_PAUSE_S = 1.0
# Seconds behind schedule after which the publisher skips ahead instead of bursting.
MAX_LAG_S = 1.0


class FramePublisher:
    """Publishes a headset's ``aiStream``."""

    def __init__(
        self,
        config: HeadsetConfig,
        redis_client: aioredis.Redis,
        character: CharacterState,
        now: Callable[[], float],
        stream_maxlen: int,
        metrics: RelayMetrics,
    ) -> None:
        self._stream = config.key(keys.CHARACTER_STREAM)
        self._redis = redis_client
        self._character = character
        self._now = now
        self._stream_maxlen = stream_maxlen
        self._metrics = metrics

    async def run(self) -> None:
        """Publishes one entry per frame until cancelled."""
        backoff = FIRST_BACKOFF_S
        next_tick = time.monotonic()
        while True:
            next_tick += 1.0 / FPS
            try:
                await self.publish()
                self._metrics.redis_up.set(1)
                backoff = FIRST_BACKOFF_S
            except RedisError:
                self._metrics.redis_up.set(0)
                self._metrics.errors_total.labels("redis").inc()
                await asyncio.sleep(backoff)
                backoff = min(MAX_BACKOFF_S, backoff * 2)
                next_tick = time.monotonic()
                continue
            except Exception:  # the character must keep moving
                self._metrics.errors_total.labels("internal").inc()
                log.exception("publishing a frame failed")
                await asyncio.sleep(ERROR_PAUSE_S)
                next_tick = time.monotonic()
                continue
            delay = next_tick - time.monotonic()
            if delay < -MAX_LAG_S:
                next_tick = time.monotonic()  # fell behind (machine busy): do not burst
            await asyncio.sleep(max(0.0, delay))

    def fields(self) -> dict[str, str]:
        """The ``aiStream`` entry of the character's frame now."""
        character = self._character
        pose, trans, face = character.animator.frame(self._now())
        fields = character.rig.frames(pose[None], trans[None])[0]
        fields.update(face_fields(face)[0])  # clipped to [0, 1] there
        return fields

    async def publish(self) -> None:
        """Adds the current frame to ``aiStream`` (nothing before the character is known)."""
        if self._character.animator is None or self._character.rig is None:
            return
        await self._redis.xadd(
            self._stream, self.fields(), maxlen=self._stream_maxlen, approximate=True
        )
        self._metrics.frames_total.inc()
