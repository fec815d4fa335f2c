"""Where the relay's calls go: one balanced channel per service, and for the llm, optionally,
one channel per replica with each session's turns kept on one replica.

Every service channel spreads calls over the replicas of its address (the forms of
``solami.client``) with gRPC's own ``round_robin``, watches each replica's health service
(client-side health checking: a replica that reports NOT_SERVING, because it is loading, its
engine died or it drains after SIGTERM, gets no new calls) and retries the service's idempotent
calls once when the service is UNAVAILABLE.

The llm keeps the key/value cache of recent prompts per replica, so a session's next turn is
cheapest on the replica that served its last one. ``LlmReplicas`` keeps one such channel per
replica (the listed addresses, or the addresses a ``dns:///`` name resolves to, resolved again
every ``REPLICA_REFRESH_S``) and picks a session's replica by rendezvous hashing over the
replicas that are usable. A replica whose call failed UNAVAILABLE is set aside for
``DOWN_HOLD_S`` (that turn gets the usual apology); its sessions move to their next-ranked
replica and stay there. A replica added or removed moves only the sessions that rank it first.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ipaddress
import logging
import socket
import time
from collections.abc import Callable

import grpc

from relay.errors import TurnError
from solami.client import ROUND_ROBIN, Endpoints, channel_options, parse_address
from solami.logs import log_event
from solami.registry import ServiceInfo

log = logging.getLogger(__name__)

# Calls that may run twice without harm, retried when the service is UNAVAILABLE. Streams that
# generate (Generate, Synthesize, Vocode, DecodeMotion, Animate) are not: their requests come
# from the turn as it goes.
IDEMPOTENT_RPCS = {
    "asr": ("Transcribe", "Tokenize"),
    "motion": ("EncodeUserMotion", "TextToMotion", "CaptionMotion"),
}
RETRY_POLICY = {
    "maxAttempts": 2,
    "initialBackoff": "0.2s",
    "maxBackoff": "1s",
    "backoffMultiplier": 2,
    "retryableStatusCodes": ["UNAVAILABLE"],
}
# Seconds between resolutions of a dns:/// llm address into its replicas (pods come and go).
REPLICA_REFRESH_S = 10.0
# Longest wait for one resolution, in seconds.
RESOLVE_TIMEOUT_S = 5.0
# Seconds a replica whose call failed UNAVAILABLE gets no sessions, so that a turn does not
# pick it again before its channel has noticed the failure (after that the channel's state
# decides: a dead replica's channel stays in TRANSIENT_FAILURE).
DOWN_HOLD_S = 10.0
# Seconds the calls still running on a replica that left the DNS answer may finish.
REMOVED_GRACE_S = 60.0
# Channel states whose replica takes no sessions.
_UNUSABLE = (grpc.ChannelConnectivity.TRANSIENT_FAILURE, grpc.ChannelConnectivity.SHUTDOWN)


def service_config(info: ServiceInfo) -> dict:
    """The service config of a channel to ``info``'s replicas: round robin over the healthy
    ones, idempotent calls retried."""
    config: dict = {**ROUND_ROBIN, "healthCheckConfig": {"serviceName": info.full_name}}
    methods = [
        {"service": info.full_name, "method": rpc} for rpc in IDEMPOTENT_RPCS.get(info.name, ())
    ]
    if methods:
        config["methodConfig"] = [{"name": methods, "retryPolicy": RETRY_POLICY}]
    return config


def channel_for(info: ServiceInfo, target: str | None = None) -> grpc.aio.Channel:
    """A channel to ``target`` (default: the gRPC target of ``info``'s address) with the
    service's config."""
    if target is None:
        target = parse_address(info.address(), f"{info.env_prefix}ADDR").target
    return grpc.aio.insecure_channel(target, options=channel_options(service_config(info)))


def rendezvous_weight(session_id: str, replica: str) -> int:
    """The rank of ``replica`` for ``session_id``: the session goes to the highest of the usable
    replicas. A stable hash (not Python's salted ``hash``) so every relay process agrees."""
    digest = hashlib.blake2b(f"{replica}\n{session_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


class Replica:
    """One llm replica: its address, channel and stub, and whether it was set aside."""

    def __init__(self, address: str, channel: grpc.aio.Channel, stub) -> None:
        self.address = address
        self.channel = channel
        self.stub = stub
        self.down_until = 0.0

    def usable(self, now: float) -> bool:
        state = self.channel.get_state(try_to_connect=False)
        return now >= self.down_until and state not in _UNUSABLE

    def mark_down(self) -> None:
        self.down_until = time.monotonic() + DOWN_HOLD_S


class LlmReplicas:
    """The llm's replicas, one channel each, and the replica of each session.

    gRPC Python offers hash-based picking only through xDS (ring_hash needs a control plane),
    so the choice is made here: rendezvous (highest random weight) hashing, a few lines that
    need no shared state between relays and move only 1/n of the sessions when a replica comes
    or goes. Each replica's channel still does its own connecting, keepalive and health
    watching; this class only decides which channel a turn uses.
    """

    def __init__(self, info: ServiceInfo, make_stub: Callable[[grpc.aio.Channel], object]) -> None:
        self._info = info
        self._make_stub = make_stub
        self._endpoints: Endpoints = parse_address(info.address(), f"{info.env_prefix}ADDR")
        self._replicas: dict[str, Replica] = {}
        self._closing: set[asyncio.Task] = set()
        self._refresher: asyncio.Task | None = None
        self._resolved = asyncio.Event() if self._endpoints.dns_name else None
        if not self._endpoints.dns_name:
            self._update(self._endpoints.replicas)

    @property
    def replicas(self) -> dict[str, Replica]:
        """Address -> replica, as known now."""
        return dict(self._replicas)

    async def pick(self, session_id: str) -> Replica:
        """The replica for ``session_id``: the highest-ranked usable one (any, when none is)."""
        if self._resolved is not None:
            if self._refresher is None:
                self._refresher = asyncio.create_task(self._refresh_every(), name="llm-replicas")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._resolved.wait(), RESOLVE_TIMEOUT_S)
        replicas = list(self._replicas.values())
        if not replicas:
            raise TurnError("llm", f"UNAVAILABLE: no replica at {self._endpoints.target}")
        now = time.monotonic()
        usable = [r for r in replicas if r.usable(now)] or replicas
        return max(usable, key=lambda r: rendezvous_weight(session_id, r.address))

    def state(self) -> str:
        """READY when a replica is, else the first of CONNECTING, IDLE, TRANSIENT_FAILURE that
        one is in (TRANSIENT_FAILURE without replicas)."""
        states = {r.channel.get_state(try_to_connect=True) for r in self._replicas.values()}
        for state in (
            grpc.ChannelConnectivity.READY,
            grpc.ChannelConnectivity.CONNECTING,
            grpc.ChannelConnectivity.IDLE,
        ):
            if state in states:
                return state.name
        return grpc.ChannelConnectivity.TRANSIENT_FAILURE.name

    def _update(self, addresses: tuple[str, ...]) -> None:
        for address in addresses:
            if address not in self._replicas:
                channel = channel_for(self._info, address)
                channel.get_state(try_to_connect=True)  # connect now: a dead one shows before use
                self._replicas[address] = Replica(address, channel, self._make_stub(channel))
        for address in set(self._replicas) - set(addresses):
            replica = self._replicas.pop(address)
            task = asyncio.create_task(replica.channel.close(REMOVED_GRACE_S))
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    async def _resolve(self) -> tuple[str, ...]:
        name, port = self._endpoints.dns_name, self._endpoints.dns_port
        infos = await asyncio.wait_for(
            asyncio.get_running_loop().getaddrinfo(name, port, type=socket.SOCK_STREAM),
            RESOLVE_TIMEOUT_S,
        )
        addresses = set()
        for family, *_, sockaddr in infos:
            ip = ipaddress.ip_address(sockaddr[0])
            addresses.add(f"[{ip}]:{port}" if family == socket.AF_INET6 else f"{ip}:{port}")
        return tuple(sorted(addresses))

    async def _refresh_every(self) -> None:
        while True:
            try:
                addresses = await self._resolve()
            except (OSError, TimeoutError) as exc:  # keep the replicas known so far
                log_event(
                    log,
                    "llm replicas not resolved",
                    logging.WARNING,
                    target=self._endpoints.target,
                    error=str(exc),
                )
            else:
                if addresses != tuple(sorted(self._replicas)):
                    log_event(log, "llm replicas", replicas=",".join(addresses))
                self._update(addresses)
                self._resolved.set()
            await asyncio.sleep(REPLICA_REFRESH_S)

    async def close(self) -> None:
        if self._refresher is not None:
            self._refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresher
        for task in list(self._closing):
            task.cancel()
        for replica in self._replicas.values():
            await replica.channel.close()
        self._replicas.clear()
