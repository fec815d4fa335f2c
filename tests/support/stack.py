"""The whole stack as real processes on free loopback ports: every service, the relay, Redis.

Parts can be stopped and started again (to test failures) without touching the others.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

from solami.registry import SERVICES
from tests.support.servers import ROOT, free_port, wait_for_health, wait_until

RIG_DATA = Path(__file__).resolve().parents[3] / "shared" / "solami-data"


class Stack:
    """Services + relay processes sharing one environment."""

    def __init__(self, redis_url: str, tmp: Path, headsets: str = "", **extra_env: str) -> None:
        self.env: dict[str, str] = {
            "SOLAMI_REDIS_URL": redis_url,
            "SOLAMI_ASR_CACHE_DIR": str(tmp / "cache"),
            "SOLAMI_RELAY_FILES_DIR": str(tmp / "files"),
            "SOLAMI_RELAY_PORT": str(free_port()),
            "SOLAMI_RELAY_HTTP_PORT": str(free_port()),
            "SOLAMI_RELAY_METRICS_PORT": str(free_port()),
            "SOLAMI_RELAY_SESSION_IDLE_S": "600",
            "SOLAMI_RELAY_HOST": "127.0.0.1",
            **extra_env,
        }
        if headsets:
            self.env["SOLAMI_RELAY_HEADSETS"] = headsets
        if RIG_DATA.is_dir():
            self.env["SOLAMI_RIG_DATA"] = str(RIG_DATA)
        for info in SERVICES.values():
            self.env[f"{info.env_prefix}PORT"] = str(free_port())
            self.env[f"{info.env_prefix}METRICS_PORT"] = str(free_port())
            self.env[f"{info.env_prefix}HOST"] = "127.0.0.1"
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.logs = tmp

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.env['SOLAMI_RELAY_PORT']}"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.env['SOLAMI_RELAY_HTTP_PORT']}"

    def address(self, name: str) -> str:
        return f"127.0.0.1:{self.env[SERVICES[name].env_prefix + 'PORT']}"

    def start(self, name: str) -> None:
        with open(self.logs / f"{name}.log", "a") as log:
            self.processes[name] = subprocess.Popen(
                [sys.executable, "-m", "solami_cli", "serve", name],
                cwd=ROOT,
                env={**os.environ, "PYTHONUNBUFFERED": "1", **self.env},
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def wait_ready(self, names: list[str], timeout_s: float = 180) -> None:
        for name in names:
            if name == "relay":
                self._wait_http(timeout_s)
            else:
                wait_for_health(self.address(name), SERVICES[name].full_name, "SERVING", timeout_s)

    def _wait_http(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(self.http_url + "/healthz", timeout=1) as reply:
                    if reply.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"relay not healthy; log: {(self.logs / 'relay.log').read_text()}")

    def wait_relay_connected(self, names: list[str], timeout_s: float = 30) -> None:
        """Waits until the relay's channels to ``names`` are READY (after a service restart)."""

        def connected() -> bool:
            with urllib.request.urlopen(self.http_url + "/healthz", timeout=5) as reply:
                states = json.loads(reply.read())["services"]
            return all(states[name] == "READY" for name in names)

        wait_until(connected, f"the relay's channels to {names} reconnecting", timeout_s)

    def post_form(
        self, path: str, fields: dict[str, str], files: dict[str, tuple[str, bytes]] | None = None
    ) -> tuple[int, dict]:
        """POSTs a multipart form to the relay's HTTP API: (status, JSON reply)."""
        boundary = uuid.uuid4().hex
        body = b""
        for key, value in fields.items():
            body += (
                f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n{value}\r\n'
            ).encode()
        for key, (filename, data) in (files or {}).items():
            body += (
                (
                    f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"; '
                    f'filename="{filename}"\r\n\r\n'
                ).encode()
                + data
                + b"\r\n"
            )
        body += f"--{boundary}--\r\n".encode()
        conn = http.client.HTTPConnection("127.0.0.1", int(self.env["SOLAMI_RELAY_HTTP_PORT"]))
        conn.request(
            "POST", path, body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}
        )
        reply = conn.getresponse()
        return reply.status, json.loads(reply.read())

    def send_raw(self, request: bytes) -> tuple[int, bytes]:
        """Sends one HTTP request, byte for byte as given, to the relay's HTTP port: (status,
        body)."""
        port = int(self.env["SOLAMI_RELAY_HTTP_PORT"])
        with socket.create_connection(("127.0.0.1", port), timeout=120) as sock:
            sock.sendall(request)
            reply = http.client.HTTPResponse(sock)
            reply.begin()
            return reply.status, reply.read()

    def stop(self, name: str, sig: int = signal.SIGTERM) -> None:
        process = self.processes.pop(name, None)
        if process is None:
            return
        process.send_signal(sig)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def stop_all(self) -> None:
        for name in list(self.processes):
            self.stop(name)

    def metrics(self) -> str:
        port = self.env["SOLAMI_RELAY_METRICS_PORT"]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
            return reply.read().decode()

    def metric(self, name: str) -> float:
        """A sample of the relay's metrics (0 when absent)."""
        return _sample(self.metrics(), name)

    def service_metric(self, service: str, name: str) -> float:
        """A sample of one service's metrics (0 when absent)."""
        port = self.env[SERVICES[service].env_prefix + "METRICS_PORT"]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
            return _sample(reply.read().decode(), name)


def _sample(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return 0.0
