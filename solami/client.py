"""Client-side helpers shared by the CLI, the relay and tests: channels and health checks.

A service address (``SOLAMI_<NAME>_ADDR``) takes three forms, each one gRPC target whose
addresses get the calls in turn (``round_robin``):

- ``host:port``: one server (or one Kubernetes ClusterIP Service: one virtual address);
- ``dns:///name:port``: every address ``name`` resolves to (a Kubernetes headless Service: one
  A record per ready pod), resolved again when a connection drops;
- ``ip:port,ip:port,...``: the listed replicas (IP literals, all IPv4 or all IPv6 in
  brackets), for replicas started by hand.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from solami.settings import SettingsError

# Largest message a client sends or accepts, in MiB (matches the servers' default).
CLIENT_MAX_MESSAGE_MB = 32
# Shortest time between two DNS resolutions of a dns:/// target, in ms: a pod that goes away
# triggers one, and a burst of dropped connections does not flood the cluster DNS.
DNS_MIN_RERESOLUTION_MS = 5_000

CLIENT_OPTIONS = [
    ("grpc.max_send_message_length", CLIENT_MAX_MESSAGE_MB * 1024 * 1024),
    ("grpc.max_receive_message_length", CLIENT_MAX_MESSAGE_MB * 1024 * 1024),
    # A pod that vanishes without closing its connections (node lost) is noticed within 40 s,
    # idle or not; the servers accept pings every 5 s.
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
    # A restarted service is reached again within about two seconds (gRPC's default backoff
    # grows to two minutes, and calls fail fast meanwhile).
    ("grpc.initial_reconnect_backoff_ms", 250),
    ("grpc.max_reconnect_backoff_ms", 2_000),
    ("grpc.dns_min_time_between_resolutions_ms", DNS_MIN_RERESOLUTION_MS),
]
# Service config of every channel: calls go to the target's addresses in turn.
ROUND_ROBIN = {"loadBalancingConfig": [{"round_robin": {}}]}

UNREACHABLE = "UNREACHABLE"


@dataclasses.dataclass(frozen=True)
class Endpoints:
    """Where a service's replicas are, read from its address."""

    # The gRPC target of one channel over all of them.
    target: str
    # "host:port" of each listed replica; empty for a dns:/// address.
    replicas: tuple[str, ...] = ()
    # The name and port a dns:/// address resolves (name "" otherwise).
    dns_name: str = ""
    dns_port: int = 0


def _split_host_port(entry: str, what: str) -> tuple[str, int]:
    host, sep, port = entry.strip().rpartition(":")
    if not sep or not host or not port.isdigit():
        raise SettingsError(f"{what}: {entry!r} is not host:port")
    return host, int(port)


def parse_address(address: str, what: str = "service address") -> Endpoints:
    """The endpoints of ``address`` in one of the forms of this module's docstring; ``what``
    names the setting in errors."""
    address = address.strip()
    if address.startswith("dns:"):
        host, port = _split_host_port(address.rpartition("/")[2] or address[4:], what)
        return Endpoints(address, dns_name=host, dns_port=port)
    if "," not in address:
        return Endpoints(address, (address,))
    families, entries = set(), []
    for entry in address.split(","):
        host, port = _split_host_port(entry, what)
        try:
            ip = ipaddress.ip_address(host.strip("[]"))
        except ValueError:
            raise SettingsError(
                f"{what}: a list of replicas takes IP addresses, got {host!r}; for a name with "
                "several addresses use dns:///<name>:<port>"
            ) from None
        families.add(ip.version)
        entries.append(f"[{ip}]:{port}" if ip.version == 6 else f"{ip}:{port}")
    if len(families) > 1:
        raise SettingsError(f"{what}: list IPv4 or IPv6 replicas, not both")
    scheme = "ipv6" if families == {6} else "ipv4"
    return Endpoints(f"{scheme}:{','.join(entries)}", tuple(entries))


def channel_options(service_config: dict | None = None) -> list[tuple[str, object]]:
    """The stack's channel options with ``service_config`` (default: round robin)."""
    config = ROUND_ROBIN if service_config is None else service_config
    return [*CLIENT_OPTIONS, ("grpc.service_config", json.dumps(config))]


def aio_channel(address: str) -> grpc.aio.Channel:
    """An asyncio channel to ``address`` (any form above) with the stack's limits."""
    return grpc.aio.insecure_channel(parse_address(address).target, options=channel_options())


def sync_channel(address: str) -> grpc.Channel:
    """A blocking channel to ``address`` with the stack's limits (CLI use)."""
    return grpc.insecure_channel(parse_address(address).target, options=channel_options())


def check_health(address: str, service: str = "", timeout_s: float = 1.0) -> str:
    """The health status name of ``service`` at ``address`` (of one replica when there are
    several), or UNREACHABLE."""
    with sync_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout_s)
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                return "SERVICE_UNKNOWN"
            return UNREACHABLE
    return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
