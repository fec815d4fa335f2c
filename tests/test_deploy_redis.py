"""The bundled Redis as the StatefulSet runs it: its start script and configuration give
headsets (no password, as the Quest client connects) their own keys and nothing else, and the
relay (the "solami" user, password from the redis-auth Secret) everything."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import redis

from tests.support.servers import free_port

K8S = Path(__file__).resolve().parents[1] / "deploy" / "k8s"


def _redis_password() -> str:
    line = (K8S / "base" / "redis-auth.env").read_text().strip()
    key, _, value = line.partition("=")
    assert key == "password"
    return value


@pytest.fixture
def acl_redis(tmp_path):
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed (make redis)")
    port = free_port()
    # The shipped configuration with the data directory moved out of /data (Redis enters it
    # while reading the file, before command-line overrides apply).
    conf = (K8S / "base" / "redis" / "redis.conf").read_text()
    assert "\ndir /data\n" in conf
    (tmp_path / "redis.conf").write_text(conf.replace("\ndir /data\n", f"\ndir {tmp_path}\n"))
    env = {
        **os.environ,
        "REDIS_PASSWORD": _redis_password(),
        "REDIS_ACL_FILE": str(tmp_path / "users.acl"),
        "REDIS_CONF": str(tmp_path / "redis.conf"),
    }
    args = ["--port", str(port), "--bind", "127.0.0.1"]
    process = subprocess.Popen(
        ["sh", str(K8S / "base" / "redis" / "start-redis.sh"), *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                redis.Redis(port=port, socket_timeout=1).ping()
                break
            except redis.ConnectionError:
                assert process.poll() is None, process.stderr.read().decode()
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.05)
        yield port
    finally:
        process.terminate()
        process.wait(10)


@pytest.mark.e2e
def test_redis_lets_headsets_use_their_keys_and_the_relay_everything(acl_redis):
    headset = redis.Redis(port=acl_redis, decode_responses=True)
    headset.flushdb()
    headset.set("char_id", "Kvrc")
    headset.xadd("userStream", {"pelvis_rotation": "0,0,0,1", "pelvis_position": "0,1,0"})
    headset.xadd("aifbStream", {"pelvis_rotation": "0,0,0,1"})
    assert headset.xread({"aiStream": 0}, count=1, block=10) == []
    assert headset.get("change_id") is None
    headset.xadd("main:userStream", {"pelvis_rotation": "0,0,0,1"})
    for forbidden in (
        lambda: headset.set("session:abc", "x"),
        lambda: headset.config_set("maxmemory", "1"),
        lambda: headset.keys("*"),
        lambda: headset.flushall(),
        lambda: headset.acl_list(),
    ):
        with pytest.raises(redis.exceptions.NoPermissionError):
            forbidden()

    relay = redis.Redis.from_url(
        f"redis://solami:{_redis_password()}@127.0.0.1:{acl_redis}/1", decode_responses=True
    )
    relay.set("session:abc", "state")
    assert relay.get("session:abc") == "state"
    relay.execute_command("SELECT", 0)
    assert relay.get("char_id") == "Kvrc"
    with pytest.raises(redis.exceptions.AuthenticationError):
        redis.Redis.from_url(f"redis://solami:wrong@127.0.0.1:{acl_redis}/0").ping()
