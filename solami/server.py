"""The gRPC service runtime: server factory, health, reflection, metrics and lifecycle.

Lifecycle of a service process (``run_service``):
1. metrics endpoint and gRPC server start; health says NOT_SERVING;
2. the engine loads and warms up in a worker thread; health flips to SERVING;
3. a watchdog turns health back to NOT_SERVING if the engine reports itself unhealthy;
4. SIGTERM/SIGINT: health NOT_SERVING -> ``server.stop(grace)`` drains in-flight RPCs (new
   ones get UNAVAILABLE) -> engine shutdown -> exit 0.
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import logging
import signal
import time
from collections.abc import Callable
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from solami.engine import Engine
from solami.interceptor import ServiceInterceptor
from solami.logs import configure_logging, log_event
from solami.metrics import ServiceMetrics
from solami.registry import ServiceInfo
from solami.settings import ServiceSettings, load_settings

log = logging.getLogger(__name__)

# Seconds between checks of the engine's health by the watchdog.
WATCHDOG_INTERVAL_S = 1.0

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


@dataclasses.dataclass(frozen=True)
class ServiceDefinition:
    """How to serve one service: its facts, its generated registrar and its servicer factory."""

    info: ServiceInfo
    # The generated ``add_<Name>Servicer_to_server`` function.
    add_servicer: Callable[[Any, grpc.aio.Server], None]
    # Builds the servicer from the engine and the service's metrics.
    make_servicer: Callable[[Engine, ServiceMetrics], Any]


class State(enum.Enum):
    """Where a service process is in its lifecycle."""

    STARTING = "starting"
    SERVING = "serving"
    FAILED = "failed"
    DRAINING = "draining"


def server_options(settings: ServiceSettings) -> list[tuple[str, int]]:
    """Channel arguments for message size limits, keepalive and connection age."""
    max_bytes = settings.max_message_mb * 1024 * 1024
    return [
        ("grpc.max_send_message_length", max_bytes),
        ("grpc.max_receive_message_length", max_bytes),
        ("grpc.keepalive_time_ms", int(settings.keepalive_s * 1000)),
        ("grpc.keepalive_timeout_ms", int(settings.keepalive_timeout_s * 1000)),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.min_ping_interval_without_data_ms", 5000),
        ("grpc.http2.max_pings_without_data", 0),
        # Aged connections close gracefully, so round-robin clients of a dns:/// name resolve
        # it again and reach replicas added since (grpc/grpc#12295).
        ("grpc.max_connection_age_ms", int(settings.max_connection_age_s * 1000)),
        ("grpc.max_connection_age_grace_ms", int(settings.connection_grace_s * 1000)),
    ]


class ServiceHost:
    """Owns one service's gRPC server, health, metrics endpoint and engine."""

    def __init__(
        self,
        definition: ServiceDefinition,
        settings: ServiceSettings,
        engine: Engine,
        metrics: ServiceMetrics | None = None,
    ) -> None:
        self.definition = definition
        self.settings = settings
        self.engine = engine
        self.metrics = metrics or ServiceMetrics(definition.info.name)
        self.health = health.aio.HealthServicer()
        self.state = State.STARTING
        self.port = 0
        self.metrics_port = 0
        self._server: grpc.aio.Server | None = None
        self._metrics_http: Any = None
        self._watchdog: asyncio.Task[None] | None = None

    def refusal(self) -> str | None:
        """Why application RPCs are refused now, or None when they are served."""
        name = self.definition.info.name
        if self.state is State.SERVING:
            return None
        if self.state is State.STARTING:
            return f"{name} is starting: the model is still loading"
        if self.state is State.DRAINING:
            return f"{name} is shutting down"
        return f"{name} engine is not available"

    async def _set_health(self, status: int) -> None:
        for service in ("", self.definition.info.full_name):
            await self.health.set(service, status)
        self.metrics.serving.set(1 if status == SERVING else 0)

    async def start(self) -> int:
        """Starts the metrics endpoint and the gRPC server (NOT_SERVING); returns the gRPC port."""
        await self._set_health(NOT_SERVING)
        if self.settings.metrics_port >= 0:
            http, _, self.metrics_port = self.metrics.serve_http(
                self.settings.host, self.settings.metrics_port
            )
            self._metrics_http = http
        self._server, self.port = create_server(self)
        await self._server.start()
        log_event(
            log,
            "listening",
            service=self.definition.info.name,
            port=self.port,
            metrics_port=self.metrics_port,
        )
        return self.port

    async def load_engine(self) -> None:
        """Loads and warms the engine off the event loop, then reports SERVING."""
        started = time.perf_counter()
        await asyncio.to_thread(self.engine.load)
        await self.engine.warmup_async()
        elapsed = time.perf_counter() - started
        self.metrics.model_load_seconds.observe(elapsed)
        if self.state is not State.STARTING:
            return
        self.state = State.SERVING
        await self._set_health(SERVING)
        log_event(
            log,
            "serving",
            service=self.definition.info.name,
            engine=self.engine.name,
            load_ms=round(elapsed * 1000),
        )
        self._watchdog = asyncio.create_task(self._watch_engine())

    async def _watch_engine(self) -> None:
        while self.state is State.SERVING:
            await asyncio.sleep(WATCHDOG_INTERVAL_S)
            if self.state is State.SERVING and not self.engine.healthy:
                self.state = State.FAILED
                await self._set_health(NOT_SERVING)
                log_event(log, "engine unhealthy", logging.ERROR, engine=self.engine.name)

    async def stop(self, grace_s: float | None = None) -> None:
        """Health NOT_SERVING, drain in-flight RPCs for the grace period, shut the engine down."""
        grace = self.settings.grace_s if grace_s is None else grace_s
        self.state = State.DRAINING
        self.metrics.serving.set(0)
        await self.health.enter_graceful_shutdown()
        if self._watchdog is not None:
            self._watchdog.cancel()
        started = time.perf_counter()
        if self._server is not None:
            await self._server.stop(grace)
        await asyncio.to_thread(self.engine.shutdown)
        if self._metrics_http is not None:
            self._metrics_http.shutdown()
            self._metrics_http.server_close()
        log_event(
            log,
            "stopped",
            service=self.definition.info.name,
            drain_ms=round((time.perf_counter() - started) * 1000),
        )


def create_server(host: ServiceHost) -> tuple[grpc.aio.Server, int]:
    """Builds the grpc.aio server for ``host``: interceptor, servicer, health, reflection, port."""
    settings = host.settings
    server = grpc.aio.server(
        interceptors=[ServiceInterceptor(host.metrics, host.refusal)],
        options=server_options(settings),
        maximum_concurrent_rpcs=settings.max_concurrent_rpcs,
    )
    info = host.definition.info
    host.definition.add_servicer(host.definition.make_servicer(host.engine, host.metrics), server)
    health_pb2_grpc.add_HealthServicer_to_server(host.health, server)
    reflection.enable_server_reflection(
        (info.full_name, health.SERVICE_NAME, reflection.SERVICE_NAME), server
    )
    port = server.add_insecure_port(f"{settings.host}:{settings.port}")
    if port == 0:
        raise OSError(f"{info.name}: cannot bind {settings.host}:{settings.port}")
    return server, port


async def serve(host: ServiceHost) -> int:
    """Runs ``host`` until SIGTERM/SIGINT; returns the process exit code."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await host.start()
    loading = asyncio.create_task(host.load_engine())
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait({loading, stopping}, return_when=asyncio.FIRST_COMPLETED)
    exit_code = 0
    if loading.done() and loading.exception() is not None:
        log.error("engine failed to load", exc_info=loading.exception())
        host.state = State.FAILED
        exit_code = 1
    elif not stop.is_set():
        await stopping
    stopping.cancel()
    log_event(log, "shutting down", service=host.definition.info.name)
    await host.stop()
    return exit_code


def serve_main(
    definition: ServiceDefinition,
    settings_class: type[ServiceSettings],
    make_engine: Callable[[Any], Engine],
) -> int:
    """A service process's ``main``: settings from its env prefix, its engine, the runtime."""
    settings = load_settings(settings_class, definition.info.env_prefix)
    return run_service(definition, settings, make_engine(settings))


def run_service(definition: ServiceDefinition, settings: ServiceSettings, engine: Engine) -> int:
    """Entry point of a service process: configures logging, serves, returns the exit code."""
    configure_logging(settings.log_format, settings.log_level)
    return asyncio.run(serve(ServiceHost(definition, settings, engine)))
