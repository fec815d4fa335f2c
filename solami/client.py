"""Client-side helpers shared by the CLI, the relay and tests: channels and health checks."""

from __future__ import annotations

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

# Largest message a client sends or accepts, in MiB (matches the servers' default).
CLIENT_MAX_MESSAGE_MB = 32

CLIENT_OPTIONS = [
    ("grpc.max_send_message_length", CLIENT_MAX_MESSAGE_MB * 1024 * 1024),
    ("grpc.max_receive_message_length", CLIENT_MAX_MESSAGE_MB * 1024 * 1024),
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    # A restarted service is reached again within about two seconds (gRPC's default backoff
    # grows to two minutes, and calls fail fast meanwhile).
    ("grpc.initial_reconnect_backoff_ms", 250),
    ("grpc.max_reconnect_backoff_ms", 2_000),
]

UNREACHABLE = "UNREACHABLE"


def aio_channel(address: str) -> grpc.aio.Channel:
    """An asyncio channel to ``address`` ("host:port") with the stack's limits."""
    return grpc.aio.insecure_channel(address, options=CLIENT_OPTIONS)


def sync_channel(address: str) -> grpc.Channel:
    """A blocking channel to ``address`` with the stack's limits (CLI use)."""
    return grpc.insecure_channel(address, options=CLIENT_OPTIONS)


def check_health(address: str, service: str = "", timeout_s: float = 1.0) -> str:
    """The health status name of ``service`` at ``address``, or UNREACHABLE."""
    with sync_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout_s)
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                return "SERVICE_UNKNOWN"
            return UNREACHABLE
    return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
