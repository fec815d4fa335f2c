"""The Redis ``solami up`` starts with a password (``--lan``), against a real redis-server: the
stack's user may do everything, the headsets' passwordless user only what the Quest client
does, and the password is never on a command line."""

from __future__ import annotations

import pytest
import redis

from solami.redis_local import STACK_USER, start_local_redis
from tests.support.servers import free_port

PASSWORD = "not-a-real-secret-7f3a"


@pytest.fixture(scope="module")
def server():
    port = free_port()
    running = start_local_redis(f"redis://{STACK_USER}:{PASSWORD}@127.0.0.1:{port}/0")
    yield port, running
    running.stop()


def test_the_headset_user_does_what_the_quest_client_does_and_nothing_else(server):
    port, _ = server
    headset = redis.Redis(port=port)
    headset.flushdb()
    headset.set("char_id", "Vrmgirl")
    headset.xadd("userStream", {"pelvis_position": "0,1,0"})
    assert headset.xrange("aiStream") == []
    stack = redis.Redis(port=port, username=STACK_USER, password=PASSWORD)
    stack.set("solami:session:abc", "{}")
    for refused in (
        lambda: headset.get("solami:session:abc"),
        lambda: headset.config_set("maxmemory", "1"),
        lambda: headset.flushall(),
        lambda: headset.keys("*"),
        lambda: headset.execute_command("ACL", "LIST"),
    ):
        with pytest.raises(redis.exceptions.NoPermissionError):
            refused()
    assert stack.get("solami:session:abc") == b"{}"
    with pytest.raises(redis.exceptions.AuthenticationError):
        redis.Redis(port=port, username=STACK_USER, password="wrong").ping()


def test_the_password_is_in_a_private_file_not_on_the_command_line(server):
    _, running = server
    with open(f"/proc/{running.pid}/cmdline", "rb") as cmdline:
        assert PASSWORD.encode() not in cmdline.read()
    config = next(running.workdir.glob("*.conf"))
    assert config.stat().st_mode & 0o077 == 0
