"""One headset: its WebSocket, wired to its character, its turns and its ``aiStream``.

The Quest client connects its WebSocket once and never reconnects, so nothing here closes it:
bad messages are logged, counted and skipped; failed turns end with a spoken apology; a new
utterance during an answer interrupts it (barge-in).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import redis.asyncio as aioredis
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from relay.assets import Assets
from relay.clients import ServiceClients
from relay.headset.character import CharacterState
from relay.headset.inputs import HeadsetInputs
from relay.headset.publisher import FramePublisher
from relay.headset.runner import TurnRunner
from relay.metrics import RelayMetrics
from relay.sessions import Session, SessionStore
from relay.settings import HeadsetConfig, RelaySettings
from solami.logs import log_event

log = logging.getLogger(__name__)

# Seconds between checks of the headset's char_id key (and trims of its input streams).
CHAR_POLL_S = 0.5
# What every headset WAV starts with.
WAV_MAGIC = b"RIFF"


class HeadsetLink:
    """Everything the relay does for one headset."""

    def __init__(
        self,
        config: HeadsetConfig,
        redis_client: aioredis.Redis,
        store: SessionStore,
        clients: ServiceClients,
        assets: Assets,
        settings: RelaySettings,
        metrics: RelayMetrics,
    ) -> None:
        self.config = config
        self._metrics = metrics
        self._ws: ServerConnection | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._clock0 = time.monotonic()
        self.character = CharacterState(
            config, redis_client, store, assets, settings, metrics, on_change=self._cancel_turn
        )
        self.inputs = HeadsetInputs(config, redis_client, settings.stream_maxlen, metrics)
        self.publisher = FramePublisher(
            config, redis_client, self.character, self.now, settings.stream_maxlen, metrics
        )
        self.runner = TurnRunner(
            config,
            redis_client,
            store,
            clients,
            assets,
            settings,
            metrics,
            self.character,
            self.inputs,
            self._send,
            self.now,
        )

    @property
    def session(self) -> Session | None:
        return self.character.session

    def now(self) -> float:
        """Seconds on the headset's animation clock."""
        return time.monotonic() - self._clock0

    async def start(self) -> None:
        await self.character.sync(force=True)
        self._tasks = [
            asyncio.create_task(self.publisher.run(), name=f"{self.config.name}-publish"),
            asyncio.create_task(self._watch(), name=f"{self.config.name}-char"),
        ]

    async def stop(self) -> None:
        await self.runner.cancel()
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def serve(self, ws: ServerConnection) -> None:
        """Handles one WebSocket connection until the headset goes away."""
        self._ws = ws  # the newest connection of this headset receives the replies
        log_event(log, "headset connected", headset=self.config.name)
        try:
            async for message in ws:
                if isinstance(message, str) or not message.startswith(WAV_MAGIC):
                    self._metrics.errors_total.labels("not_wav").inc()
                    log_event(
                        log,
                        "ignored a message that is not a WAV",
                        logging.WARNING,
                        headset=self.config.name,
                        size=len(message),
                    )
                    continue
                self.runner.begin(message)
        except ConnectionClosed:
            pass
        finally:
            if self._ws is ws:
                self._ws = None
            log_event(log, "headset disconnected", headset=self.config.name)

    async def _send(self, data: bytes) -> bool:
        ws = self._ws
        if ws is None:
            return False
        try:
            await ws.send(data)
            return True
        except ConnectionClosed:
            return False

    async def _cancel_turn(self) -> None:
        await self.runner.cancel()

    async def _watch(self) -> None:
        """Follows the headset's character, keeps its input streams bounded and picks up the
        idle animation once the services can give it."""
        while True:
            await asyncio.sleep(CHAR_POLL_S)
            try:
                await self.character.sync()
                await self.inputs.trim()
                await self.character.refresh_idle()
            except Exception:  # the watcher must outlive any one failure
                self._metrics.errors_total.labels("internal").inc()
                log.exception("character check failed")
