"""Finding or starting the Redis the stack uses on a developer machine."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from urllib.parse import urlparse, urlunparse

import redis

LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}
# Seconds to wait for a started redis-server to answer PING.
REDIS_START_TIMEOUT_S = 10.0
# Seconds a stopping redis-server gets after SIGTERM before it is killed.
REDIS_STOP_TIMEOUT_S = 5.0
# Every interface: a Redis the headsets on the LAN reach.
ALL_INTERFACES = "0.0.0.0"
# ACL of the passwordless default user when Redis listens beyond this machine: the Quest client
# connects without a password, so it may touch only the headset keys (with or without a
# per-headset prefix) and run no admin command except FLUSHDB (it empties its database at
# start), INFO and CONFIG GET (read by client libraries). Same as deploy/k8s's start-redis.sh.
HEADSET_USER_ACL = (
    "on nopass resetkeys ~*userStream ~*aifbStream ~*aiStream ~*char_id ~*change_id "
    "resetchannels &* +@all -@dangerous +flushdb +info +config|get"
)
# The user of the stack's own parts (full access, password required).
STACK_USER = "solami"


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


def redacted(url: str) -> str:
    """``url`` with its password replaced by ``***`` (for anything printed or logged)."""
    parsed = urlparse(url)
    if parsed.password is None:
        return url
    user = parsed.username or ""
    host = parsed.hostname or ""
    port = f":{parsed.port}" if parsed.port else ""
    return urlunparse(parsed._replace(netloc=f"{user}:***@{host}{port}"))


def with_password(url: str, password: str, user: str = STACK_USER) -> str:
    """``url`` authenticating as ``user`` with ``password``."""
    parsed = urlparse(url)
    host = parsed.hostname or "127.0.0.1"
    port = f":{parsed.port}" if parsed.port else ""
    return urlunparse(parsed._replace(netloc=f"{user}:{password}@{host}{port}"))


def start_local_redis(url: str, bind: str = "127.0.0.1") -> LocalRedis:
    """Starts ``redis-server`` on the port of ``url`` (no persistence); waits for PING.

    ``url`` must name this machine. By default the server listens on the loopback interface
    only. With ``bind`` another interface (``ALL_INTERFACES`` for the LAN), ``url`` must carry
    a password: the server then has two users, ``solami`` with that password and full access
    (the URL's user), and the passwordless default user limited to the headset keys
    (``HEADSET_USER_ACL``), as the Quest client connects without a password.

    The server's working directory is a fresh ``solami-redis-*`` temporary directory, removed
    by ``stop()``; the users are in a configuration file there that only this user can read
    (never on the command line, where other users could read the password).
    """
    parsed = urlparse(url)
    host = parsed.hostname or "127.0.0.1"
    if host not in LOOPBACK_HOSTS:
        raise RedisUnavailable(
            f"Redis at {redacted(url)} is unreachable and is not on this machine; start it or "
            "set SOLAMI_REDIS_URL"
        )
    if bind not in LOOPBACK_HOSTS and not parsed.password:
        raise RedisUnavailable(
            f"a Redis listening on {bind} needs a password for the stack's user: give "
            f"SOLAMI_REDIS_URL one (redis://{STACK_USER}:PASSWORD@127.0.0.1:6379/0)"
        )
    if parsed.password and (parsed.username or "default") != STACK_USER:
        raise RedisUnavailable(
            f"SOLAMI_REDIS_URL with a password must name the user {STACK_USER!r} "
            f"(redis://{STACK_USER}:PASSWORD@...): the default user is the headsets'"
        )
    binary = shutil.which("redis-server")
    if binary is None:
        raise RedisUnavailable(
            "redis-server is not installed: run `sudo apt-get install redis-server` "
            "(or `make setup`), or point SOLAMI_REDIS_URL at a running Redis"
        )
    port = parsed.port or 6379
    workdir = Path(tempfile.mkdtemp(prefix="solami-redis-"))
    lines = [f"bind {bind}", f"port {port}", 'save ""', "appendonly no", f"dir {workdir}"]
    if parsed.password:
        # Headsets are told apart from strangers by the ACL, not by the address.
        lines += [
            "protected-mode no",
            f"user default {HEADSET_USER_ACL}",
            f"user {STACK_USER} on >{parsed.password} ~* &* +@all",
        ]
    conf = workdir / "redis.conf"
    descriptor = os.open(conf, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write("\n".join(lines) + "\n")
    try:
        process = LocalRedis([binary, str(conf)], workdir)
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
