"""Finding or starting the Redis the stack uses on a developer machine."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from urllib.parse import urlparse

import redis

LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}
# Seconds to wait for a started redis-server to answer PING.
REDIS_START_TIMEOUT_S = 10.0
# Seconds a stopping redis-server gets after SIGTERM before it is killed.
REDIS_STOP_TIMEOUT_S = 5.0


class RedisUnavailable(RuntimeError):
    """No Redis is reachable and none can be started here."""


def redis_reachable(url: str, timeout_s: float = 1.0) -> bool:
    """True when a Redis at ``url`` answers PING."""
    client = redis.Redis.from_url(url, socket_connect_timeout=timeout_s, socket_timeout=timeout_s)
    try:
        return bool(client.ping())
    except (redis.RedisError, OSError):
        return False
    finally:
        client.close()


class LocalRedis(subprocess.Popen[bytes]):
    """A ``redis-server`` started here, with the working directory it was given."""

    def __init__(self, args: list[str], workdir: Path) -> None:
        super().__init__(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # Temporary --dir of the server; removed by stop().
        self.workdir = workdir

    def stop(self, timeout_s: float = REDIS_STOP_TIMEOUT_S) -> None:
        """Terminates the server (killing it after ``timeout_s``), then removes its directory."""
        if self.poll() is None:
            self.terminate()
            try:
                self.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.kill()
                self.wait()
        shutil.rmtree(self.workdir, ignore_errors=True)


def start_local_redis(url: str) -> LocalRedis:
    """Starts ``redis-server`` on the loopback port of ``url`` (no persistence); waits for PING.

    The server's working directory is a fresh ``solami-redis-*`` temporary directory, removed
    by ``stop()``.
    """
    parsed = urlparse(url)
    host = parsed.hostname or "127.0.0.1"
    if host not in LOOPBACK_HOSTS:
        raise RedisUnavailable(
            f"Redis at {url} is unreachable and is not on this machine; start it or set "
            "SOLAMI_REDIS_URL"
        )
    binary = shutil.which("redis-server")
    if binary is None:
        raise RedisUnavailable(
            "redis-server is not installed: run `sudo apt-get install redis-server` "
            "(or `make setup`), or point SOLAMI_REDIS_URL at a running Redis"
        )
    port = parsed.port or 6379
    workdir = Path(tempfile.mkdtemp(prefix="solami-redis-"))
    args = [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no"]
    try:
        process = LocalRedis([*args, "--dir", str(workdir)], workdir)
    except OSError:
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    deadline = time.monotonic() + REDIS_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if redis_reachable(url, 0.2):
            return process
        if process.poll() is not None:
            process.stop()
            raise RedisUnavailable(f"redis-server exited with code {process.returncode}")
        time.sleep(0.05)
    process.stop(timeout_s=0)
    raise RedisUnavailable(
        f"redis-server did not answer on port {port} within {REDIS_START_TIMEOUT_S:.0f} s"
    )
