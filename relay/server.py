"""The relay process: one WebSocket server per headset, the compatibility HTTP API, metrics."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from urllib.parse import urlparse, urlunparse

import redis.asyncio as aioredis
import uvicorn
from prometheus_client import start_http_server
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry
from websockets.asyncio.server import serve as ws_serve

from relay.assets import Assets
from relay.clients import ServiceClients
from relay.compat import create_app
from relay.headset import HeadsetLink
from relay.metrics import RelayMetrics
from relay.sessions import SessionStore
from relay.settings import RelaySettings, load_relay_settings
from solami.logs import configure_logging, log_event
from solami.registry import RELAY

log = logging.getLogger(__name__)

# Largest WebSocket message: a 10 s 44.1 kHz WAV is 0.9 MB; leave room for longer clips.
MAX_WS_MESSAGE_BYTES = 16 * 1024 * 1024
# Seconds between WebSocket pings; a missing pong never closes the headset's connection.
WS_PING_INTERVAL_S = 20.0
# Seconds between the relay's PINGs of the sessions' Redis (solami_relay_session_redis_up).
REDIS_WATCH_INTERVAL_S = 5.0
# Longest pause between two sweeps of the compatibility API's reply files.
FILES_SWEEP_MAX_INTERVAL_S = 60.0


def with_db(url: str, db: int) -> str:
    """``url`` pointing at database ``db`` (a database in the URL path would win over a
    ``db=`` argument)."""
    parsed = urlparse(url)
    return urlunparse(parsed._replace(path=f"/{db}"))


def redis_client(url: str, db: int | None = None) -> aioredis.Redis:
    """A client that reconnects with backoff when Redis restarts."""
    return aioredis.Redis.from_url(
        url if db is None else with_db(url, db),
        socket_connect_timeout=2.0,
        socket_timeout=5.0,
        health_check_interval=10,
        retry=Retry(ExponentialBackoff(cap=2.0, base=0.05), 3),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
    )


class Relay:
    """Owns the headset links and the servers in front of them."""

    def __init__(self, settings: RelaySettings, url: str) -> None:
        self.settings = settings
        self.metrics = RelayMetrics()
        self.clients = ServiceClients.connect(settings, self.metrics)
        base = redis_client(url)
        headset_url = settings.headset_redis_url or url
        default_db = int(urlparse(headset_url).path.strip("/") or 0)
        self._redis = [base]
        sessions_redis = redis_client(url, settings.session_db)
        self._redis.append(sessions_redis)
        self.store = SessionStore(sessions_redis, settings.session_idle_s)
        self.assets = Assets(self.clients)
        self.links: list[HeadsetLink] = []
        for config in settings.headset_configs(default_db):
            client = redis_client(headset_url, config.redis_db)
            self._redis.append(client)
            self.links.append(
                HeadsetLink(
                    config, client, self.store, self.clients, self.assets, settings, self.metrics
                )
            )
        self.ready = False
        # Last answer of the sessions' Redis to the watcher's PING (read by /healthz, which must
        # not wait on Redis).
        self.redis_up = False
        # Headsets with a live session, read at each scrape.
        self.metrics.active_sessions.set_function(
            lambda: sum(link.session is not None for link in self.links)
        )

    @property
    def headsets(self) -> list[str]:
        return [link.config.name for link in self.links]

    async def redis_ok(self) -> bool:
        try:
            return bool(await self._redis[0].ping())
        except Exception:  # noqa: BLE001 - any failure means Redis is not usable
            return False

    async def _watch_redis(self) -> None:
        """Reports the sessions' Redis as a gauge; its trouble is an alert, never a failed
        readiness (the relay rides out Redis restarts with its headsets connected)."""
        while True:
            self.redis_up = await self.redis_ok()
            self.metrics.session_redis_up.set(1 if self.redis_up else 0)
            await asyncio.sleep(REDIS_WATCH_INTERVAL_S)

    async def run(self, stop: asyncio.Event) -> None:
        settings = self.settings
        if settings.metrics_port >= 0:
            start_http_server(
                settings.metrics_port, addr=settings.host, registry=self.metrics.registry
            )
        app = create_app(self)
        http = uvicorn.Server(
            uvicorn.Config(
                app,
                host=settings.host,
                port=settings.http_port,
                log_level="warning",
                lifespan="off",
            )
        )
        http_task = asyncio.create_task(http.serve())
        apologies_task = asyncio.create_task(self.assets.prepare(), name="apologies")
        sweep_s = min(settings.files_ttl_s / 4, FILES_SWEEP_MAX_INTERVAL_S)
        watchers = [
            asyncio.create_task(self._watch_redis(), name="redis-watch"),
            asyncio.create_task(app.state.reply_files.sweep_every(sweep_s), name="files-sweep"),
        ]
        servers = []
        for link in self.links:
            await link.start()
            servers.append(
                await ws_serve(
                    link.serve,
                    settings.host,
                    link.config.ws_port,
                    max_size=MAX_WS_MESSAGE_BYTES,
                    ping_interval=WS_PING_INTERVAL_S,
                    ping_timeout=None,
                )
            )
            log_event(
                log,
                "headset endpoint",
                headset=link.config.name,
                ws_port=link.config.ws_port,
                redis_db=link.config.redis_db,
            )
        self.ready = True
        log_event(log, "relay ready", http_port=settings.http_port)
        await stop.wait()
        self.ready = False
        apologies_task.cancel()
        for task in watchers:
            task.cancel()
        for server in servers:
            server.close()
        for link in self.links:
            await link.stop()
        http.should_exit = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(http_task, 5)
        await self.clients.close()
        for client in self._redis:
            await client.aclose()


async def _main(settings: RelaySettings, url: str) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await Relay(settings, url).run(stop)
    return 0


def main() -> int:
    settings, url = load_relay_settings()
    configure_logging(settings.log_format, settings.log_level)
    log_event(log, "starting relay", prefix=RELAY.env_prefix)
    return asyncio.run(_main(settings, url))


if __name__ == "__main__":
    raise SystemExit(main())
