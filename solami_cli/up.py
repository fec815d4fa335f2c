"""``solami up``: Redis (started when none answers), every available service and the relay as
child processes; waits until all are ready, prints where they listen, stops them all on
Ctrl-C/SIGTERM or when one dies.

``--lan`` (or ``SOLAMI_UP_LAN=true``) is for a Quest on the local network: the started Redis
listens on every interface, the stack's parts use a password-protected user (the password of
SOLAMI_REDIS_URL, else a fresh random one), headsets the passwordless user limited to their
keys; the headset's addresses are printed, the password never."""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import dataclasses
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

from solami.client import check_health
from solami.redis_local import (
    ALL_INTERFACES,
    LocalRedis,
    RedisUnavailable,
    redacted,
    redis_reachable,
    start_local_redis,
    with_password,
)
from solami.registry import RELAY, SERVICES, ServiceInfo, redis_url
from solami.settings import SettingsError, load_settings
from solami_cli import rig_data
from solami_cli.status import relay_health

# Seconds children get to drain after SIGTERM before they are killed.
CHILD_STOP_TIMEOUT_S = 20.0
# Seconds between readiness polls.
POLL_INTERVAL_S = 0.25
_PR_SET_PDEATHSIG = 1
# Bytes of randomness of a generated Redis password (URL-safe text).
PASSWORD_BYTES = 24
# A documentation address (TEST-NET-1): connecting a UDP socket to it sends nothing but picks
# the interface of the default route, whose address the headset uses.
_ROUTE_PROBE_ADDRESS = ("192.0.2.1", 9)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``solami up``."""
    parser.add_argument(
        "--only", default="", help="comma-separated parts to start (default: all available)"
    )
    parser.add_argument(
        "--timeout", type=float, default=600.0, help="seconds to wait for every part to be ready"
    )
    parser.add_argument(
        "--lan",
        action="store_true",
        help="let a headset on the local network in: the started Redis listens on every "
        "interface with a password for the stack (SOLAMI_REDIS_URL's, else a random one); "
        "prints the addresses the headset uses",
    )
    rig_data.add_argument(parser)


@dataclasses.dataclass(frozen=True)
class UpSettings:
    """``solami up``'s settings from the environment (``SOLAMI_UP_*``)."""

    # The same as --lan.
    lan: bool = False


def _lan_requested(args: argparse.Namespace) -> bool:
    if getattr(args, "lan", False):
        return True
    try:
        return load_settings(UpSettings, "SOLAMI_UP_").lan
    except SettingsError as exc:
        raise SystemExit(f"solami up: {exc}") from None


def lan_address() -> str:
    """This machine's address on the network of its default route (127.0.0.1 without one)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(_ROUTE_PROBE_ADDRESS)
            return probe.getsockname()[0]
        except OSError:
            return "127.0.0.1"


def lan_redis_url(url: str) -> str:
    """``url`` with the stack user's password: its own, else a fresh random one."""
    if urlparse(url).password:
        return url
    return with_password(url, secrets.token_urlsafe(PASSWORD_BYTES))


def _die_with_parent() -> None:
    """Child preexec: get SIGTERM if `solami up` itself dies, so nothing is orphaned."""
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _selected(only: str) -> list[ServiceInfo]:
    parts = [info for info in (*SERVICES.values(), RELAY) if info.is_available()]
    if not only:
        return parts
    wanted = {name.strip() for name in only.split(",") if name.strip()}
    unknown = wanted - {info.name for info in (*SERVICES.values(), RELAY)}
    if unknown:
        raise SystemExit(f"solami up: unknown part(s): {', '.join(sorted(unknown))}")
    return [info for info in parts if info.name in wanted]


def _ready(info: ServiceInfo) -> bool:
    if info is RELAY:
        return relay_health(1.0)[1] == "SERVING"
    return check_health(info.address(), info.full_name, 1.0) == "SERVING"


class Supervisor:
    """Starts and stops the child processes of `solami up`."""

    def __init__(self, rig_data: Path | None = None) -> None:
        self.children: dict[str, subprocess.Popen[bytes]] = {}
        self.redis: LocalRedis | None = None
        # Rig data directory passed to the relay (None: it reads its own settings).
        self.rig_data = rig_data
        self._stopping = False

    def start(self, info: ServiceInfo) -> None:
        command = [sys.executable, "-m", "solami_cli", "serve", info.name]
        if info is RELAY and self.rig_data is not None:
            command += ["--rig-data", str(self.rig_data)]
        self.children[info.name] = subprocess.Popen(command, preexec_fn=_die_with_parent)

    def dead(self) -> list[str]:
        return [name for name, proc in self.children.items() if proc.poll() is not None]

    def stop(self) -> None:
        if self._stopping:
            return
        self._stopping = True
        for proc in self.children.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + CHILD_STOP_TIMEOUT_S
        for proc in self.children.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self.redis is not None:
            self.redis.stop()  # also removes its temporary working directory


def run(args: argparse.Namespace) -> int:
    parts = _selected(args.only)
    supervisor = Supervisor(args.rig_data)
    stop_requested = False

    def request_stop(signum: int, frame: object) -> None:
        nonlocal stop_requested
        stop_requested = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    lan = _lan_requested(args)
    url = redis_url()
    try:
        if not redis_reachable(url):
            if lan:
                url = lan_redis_url(url)
                # The children read it from the environment they inherit.
                os.environ["SOLAMI_REDIS_URL"] = url
            supervisor.redis = start_local_redis(url, ALL_INTERFACES if lan else "127.0.0.1")
            where = f"every interface, port {urlparse(url).port or 6379}" if lan else redacted(url)
            print(f"started redis-server on {where}", flush=True)
        elif lan:
            print(
                f"solami up: Redis at {redacted(url)} was already running: headsets reach it "
                "only if it listens on the network",
                file=sys.stderr,
            )
        for info in parts:
            supervisor.start(info)
        exit_code = _wait_ready(parts, supervisor, args.timeout, lambda: stop_requested)
        if exit_code == 0 and not stop_requested:
            _print_table(parts, url)
            if lan:
                _print_headset(url)
            while not stop_requested:
                dead = supervisor.dead()
                if dead:
                    print(f"solami up: {', '.join(dead)} exited; stopping", file=sys.stderr)
                    exit_code = 1
                    break
                time.sleep(POLL_INTERVAL_S)
    except RedisUnavailable as exc:
        print(f"solami up: {exc}", file=sys.stderr)
        exit_code = 2
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        supervisor.stop()
    print("solami up: stopped", flush=True)
    return exit_code


def _wait_ready(
    parts: list[ServiceInfo], supervisor: Supervisor, timeout_s: float, stopped: object
) -> int:
    deadline = time.monotonic() + timeout_s
    pending = {info.name: info for info in parts}
    while pending:
        if stopped():  # type: ignore[operator]
            return 0
        dead = supervisor.dead()
        if dead:
            print(f"solami up: {', '.join(dead)} exited during start", file=sys.stderr)
            return 1
        for name in [name for name, info in pending.items() if _ready(info)]:
            del pending[name]
            print(f"{name} ready", flush=True)
        if time.monotonic() > deadline:
            print(
                f"solami up: not ready after {timeout_s:.0f} s: {', '.join(pending)}",
                file=sys.stderr,
            )
            return 1
        time.sleep(POLL_INTERVAL_S)
    return 0


def _print_table(parts: list[ServiceInfo], url: str) -> None:
    print("\nSOLAMI is up:", flush=True)
    print(f"  {'redis':<7} {redacted(url)}")
    for info in parts:
        metrics_port = os.environ.get(f"{info.env_prefix}METRICS_PORT", str(info.metrics_port))
        if info is RELAY:
            ws_port = os.environ.get("SOLAMI_RELAY_PORT", str(info.port))
            http_port = os.environ.get("SOLAMI_RELAY_HTTP_PORT", "8080")
            print(
                f"  {'relay':<7} ws://127.0.0.1:{ws_port}  http :{http_port}  "
                f"metrics :{metrics_port}"
            )
        else:
            print(
                f"  {info.name:<7} {info.address():<22} grpc {info.full_name}  "
                f"metrics :{metrics_port}"
            )
    print("Ctrl-C stops everything.", flush=True)


def _print_headset(url: str) -> None:
    """How a Quest on the local network connects (never the password)."""
    address = lan_address()
    ws_port = os.environ.get("SOLAMI_RELAY_PORT", str(RELAY.port))
    redis_port = urlparse(url).port or 6379
    print(
        f"\nHeadset on the local network: WebSocket ws://{address}:{ws_port}, Redis "
        f"{address}:{redis_port} without a password (that user may touch only the headset keys; "
        f"the stack's parts use the user {urlparse(url).username!r} with SOLAMI_REDIS_URL's "
        "password, or one made for this run). Open these ports in this machine's firewall.",
        flush=True,
    )
