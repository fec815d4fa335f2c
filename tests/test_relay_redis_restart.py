"""The relay rides out a Redis restart: it keeps running, reconnects with backoff, and the
character's aiStream resumes (real redis-server and relay processes)."""

from __future__ import annotations

import time

import pytest
import redis

from solami.redis_local import start_local_redis
from tests.support.servers import free_port, wait_until
from tests.support.stack import Stack

pytestmark = pytest.mark.e2e


def _frames(url: str) -> int:
    try:
        return redis.Redis.from_url(url).xlen("aiStream")
    except redis.RedisError:
        return -1


def _wait_for_frames(url: str, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    first = _frames(url)
    while time.monotonic() < deadline:
        if _frames(url) > max(first, 0) + 10:
            return
        time.sleep(0.2)
    raise AssertionError("the relay publishes no aiStream frames")


def test_relay_reconnects_after_a_redis_restart(tmp_path):
    url = f"redis://127.0.0.1:{free_port()}/0"
    server = start_local_redis(url)
    stack = Stack(url, tmp_path, SOLAMI_RELAY_ASR_DEADLINE_S="1")
    try:
        stack.start("relay")  # the services are absent: the relay idles on its fallback pose
        stack.wait_ready(["relay"], timeout_s=60)
        _wait_for_frames(url)
        server.stop()
        wait_until(lambda: stack.metric("solami_relay_redis_up") == 0.0, "Redis reported down")
        time.sleep(1.0)  # a few more publish ticks without Redis
        assert stack.processes["relay"].poll() is None, "the relay must survive Redis going away"
        server = start_local_redis(url)
        _wait_for_frames(url)
        # Up again once a publish goes through after its backoff (at most MAX_BACKOFF_S = 5 s;
        # a pooled connection from before the restart may fail once more first).
        wait_until(lambda: stack.metric("solami_relay_redis_up") == 1.0, "Redis reported up")
        stack.wait_ready(["relay"], timeout_s=10)
    finally:
        stack.stop_all()
        server.stop()
