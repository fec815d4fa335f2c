"""Running services for tests: in-process on port 0 (own event loop thread) or as processes."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path

from solami.client import check_health
from solami.engine import Engine
from solami.server import ServiceDefinition, ServiceHost
from solami.settings import ServiceSettings

ROOT = Path(__file__).resolve().parents[2]


class InProcessServer:
    """A real grpc.aio server on a loopback port 0, its event loop in a background thread."""

    def __init__(
        self, definition: ServiceDefinition, settings: ServiceSettings, engine: Engine
    ) -> None:
        self.host = ServiceHost(definition, settings, engine)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, coro, timeout: float = 120.0):
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def start(self, load: bool = True) -> InProcessServer:
        self.run(self.host.start())
        if load:
            self.run(self.host.load_engine())
        return self

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.host.port}"

    def stop(self, grace_s: float = 1.0) -> None:
        self.run(self.host.stop(grace_s))
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)


_ISSUED_PORTS: set[int] = set()


def free_port() -> int:
    """A loopback port that is free now and that no earlier call in this process has returned.

    The kernel may hand the same port to two ``bind(0)`` calls once the first socket is closed,
    so a test that takes several ports before starting its servers could give two of them the
    same one.
    """
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port not in _ISSUED_PORTS:
            _ISSUED_PORTS.add(port)
            return port


def spawn(
    args: list[str], env: Mapping[str, str], stderr_path: Path | None = None
) -> subprocess.Popen[str]:
    """Starts ``python args...`` from the repository root with extra environment.

    stdout is a pipe; stderr too unless ``stderr_path`` is given, which a long-lived process
    whose stderr nobody reads should use (a full pipe would block its logging).
    """
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **env}
    with contextlib.ExitStack() as files:
        stderr = subprocess.PIPE
        if stderr_path is not None:
            stderr = files.enter_context(open(stderr_path, "ab"))  # the child keeps its own copy
        return subprocess.Popen(
            [sys.executable, *args],
            cwd=ROOT,
            env=full_env,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )


def finish(process: subprocess.Popen[str], timeout_s: float = 120) -> tuple[str, str]:
    """``process.communicate()``; a process still running after ``timeout_s`` is killed (so a
    failing test leaves nothing behind) and the timeout raised."""
    try:
        return process.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise


def wait_until(condition, what: str, timeout_s: float = 20.0, interval_s: float = 0.05) -> None:
    """Polls ``condition()`` until it is true; fails with ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"{what} did not happen within {timeout_s:.0f} s"
        time.sleep(interval_s)


def wait_for_health(address: str, service: str, want: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    status = ""
    while time.monotonic() < deadline:
        status = check_health(address, service, 0.5)
        if status == want:
            return
        time.sleep(0.1)
    raise AssertionError(f"{address} {service!r} is {status}, wanted {want}")
