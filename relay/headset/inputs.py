"""The headset's body streams, read for a turn: the user's motion since the last turn
(``userStream``) and the character's current pose (``aifbStream``), both as Y-up SMPL-X.

Both streams are kept bounded whatever the method: the newest ``aifbStream`` snapshot and the
newest ``stream_maxlen`` ``userStream`` frames. A malformed entry is counted, logged and
skipped; it never stops a turn.
"""

from __future__ import annotations

import logging

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from relay.clients.motion import SmplxClip
from relay.metrics import RelayMetrics
from relay.quest import keys
from relay.quest.coords import pose_snapshot_to_smplx, trim_user_motion, user_frames_to_smplx
from relay.quest.rig import Rig
from relay.settings import HeadsetConfig
from solami.logs import log_event

log = logging.getLogger(__name__)


class HeadsetInputs:
    """Reads one headset's ``userStream`` and ``aifbStream``."""

    def __init__(
        self,
        config: HeadsetConfig,
        redis_client: aioredis.Redis,
        stream_maxlen: int,
        metrics: RelayMetrics,
    ) -> None:
        self._config = config
        self._redis = redis_client
        self._stream_maxlen = stream_maxlen
        self._metrics = metrics
        self._last_user_id = "0-0"

    async def trim(self) -> None:
        """Drops all but the newest pose snapshot and the newest ``stream_maxlen`` frames."""
        try:
            await self._redis.xtrim(
                self._config.key(keys.CHARACTER_POSE_STREAM), maxlen=1, approximate=False
            )
            await self._redis.xtrim(
                self._config.key(keys.USER_STREAM), maxlen=self._stream_maxlen, approximate=True
            )
        except RedisError:
            self._metrics.errors_total.labels("redis").inc()

    async def user_motion(self) -> SmplxClip | None:
        """The user's motion since the last turn (trimmed like the original relay), or None.
        The frames read are removed from the stream."""
        stream = self._config.key(keys.USER_STREAM)
        try:
            entries = await self._redis.xrange(stream, f"({self._last_user_id}")
            if not entries:
                return None
            self._last_user_id = entries[-1][0].decode()
            await self._redis.xtrim(stream, minid=self._last_user_id)
        except RedisError:
            self._metrics.errors_total.labels("redis").inc()
            return None
        try:
            poses, trans = user_frames_to_smplx([fields for _, fields in entries])
        except ValueError as exc:
            self._metrics.errors_total.labels("user_stream").inc()
            log_event(
                log,
                "bad userStream entry",
                logging.WARNING,
                headset=self._config.name,
                error=str(exc),
            )
            return None
        return trim_user_motion(poses, trans)

    async def character_pose(self, rig: Rig) -> SmplxClip | None:
        """The character's current pose from the newest ``aifbStream`` snapshot, or None."""
        try:
            entries = await self._redis.xrevrange(
                self._config.key(keys.CHARACTER_POSE_STREAM), count=1
            )
        except RedisError:
            return None
        if not entries:
            return None
        try:
            return pose_snapshot_to_smplx(entries[0][1], rig)
        except ValueError as exc:
            self._metrics.errors_total.labels("aifb_stream").inc()
            log_event(log, "bad aifbStream entry", logging.WARNING, error=str(exc))
            return None
