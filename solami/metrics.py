"""Prometheus metrics: one registry per service, served on the service's metrics port.

Names follow ``solami_<service>_<what>_<unit>``; labels are bounded (RPC method, status code,
backend), never a session or turn id.
"""

from __future__ import annotations

import dataclasses
import threading
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

# Latency buckets for RPCs, in seconds: from a cache hit to a long utterance on a slow CPU.
RPC_LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# Model load buckets, in seconds.
LOAD_BUCKETS_S = (0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)


@dataclasses.dataclass
class ServiceMetrics:
    """The runtime's metrics for one service; services add their own to ``registry``."""

    service: str
    registry: CollectorRegistry = dataclasses.field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        prefix = f"solami_{self.service}"
        self.requests_total = Counter(
            f"{prefix}_requests_total",
            "RPCs finished, by method and gRPC status code.",
            ("method", "code"),
            registry=self.registry,
        )
        self.request_duration_seconds = Histogram(
            f"{prefix}_request_duration_seconds",
            "RPC wall time from arrival to the last response message.",
            ("method",),
            buckets=RPC_LATENCY_BUCKETS_S,
            registry=self.registry,
        )
        # The autoscalers' signal (deploy/k8s/components/autoscaling-inflight): a stream counts
        # from its arrival until its last message.
        self.inflight_requests = Gauge(
            f"{prefix}_inflight_requests",
            "RPCs being served now.",
            ("method",),
            registry=self.registry,
        )
        self.model_load_seconds = Histogram(
            f"{prefix}_model_load_seconds",
            "Time to load and warm up the engine.",
            buckets=LOAD_BUCKETS_S,
            registry=self.registry,
        )
        self.serving = Gauge(
            f"{prefix}_serving",
            "1 while health reports SERVING, else 0.",
            registry=self.registry,
        )

    def serve_http(self, host: str, port: int) -> tuple[WSGIServer, threading.Thread, int]:
        """Starts the /metrics endpoint; returns the server, its thread and the bound port."""
        server, thread = start_http_server(port, addr=host, registry=self.registry)
        return server, thread, server.server_port
