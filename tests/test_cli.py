"""`solami up` and `solami status` with real Redis and real service processes."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from solami.redis_local import redis_reachable
from solami.registry import RELAY, SERVICES
from tests.support.servers import finish, free_port, spawn

pytestmark = pytest.mark.e2e


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        found.extend(int(child) for child in text)
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_up_status_and_clean_stop(tmp_path):
    redis_url = f"redis://127.0.0.1:{free_port()}/0"
    asr_port = free_port()
    env = {
        "SOLAMI_REDIS_URL": redis_url,
        "SOLAMI_RELAY_HOST": "127.0.0.1",
        "SOLAMI_ASR_CACHE_DIR": str(tmp_path),
        "SOLAMI_RELAY_PORT": str(free_port()),
        "SOLAMI_RELAY_HTTP_PORT": str(free_port()),
        "SOLAMI_RELAY_FILES_DIR": str(tmp_path / "files"),
    }
    for info in (*SERVICES.values(), RELAY):
        env[f"{info.env_prefix}METRICS_PORT"] = str(free_port())
    for info in SERVICES.values():
        env[f"{info.env_prefix}PORT"] = str(free_port())
        env[f"{info.env_prefix}HOST"] = "127.0.0.1"
    env["SOLAMI_ASR_PORT"] = str(asr_port)
    parts = [info.name for info in (*SERVICES.values(), RELAY) if info.is_available()]
    assert not redis_reachable(redis_url)
    up_log = tmp_path / "up.log"
    up = spawn(["-m", "solami", "up", "--timeout", "180"], env, stderr_path=up_log)
    try:
        lines = []
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            line = up.stdout.readline()
            assert line, f"solami up ended early: {''.join(lines)} {up_log.read_text()}"
            lines.append(line)
            if line.startswith("Ctrl-C stops everything"):
                break
        output = "".join(lines)
        assert "started redis-server" in output
        assert f"asr     127.0.0.1:{asr_port}" in output
        assert redis_reachable(redis_url)
        children = _children(up.pid)
        assert len(children) == len(parts) + 1  # redis-server + every part

        status = spawn(["-m", "solami", "status", "--timeout", "10"], env)
        out, err = finish(status, 120)
        assert status.returncode == 0, out + err
        rows = {line.split()[0]: line.split()[-1] for line in out.splitlines()}
        assert rows == dict.fromkeys(["redis", *parts], "SERVING")

        up.send_signal(signal.SIGINT)
        assert up.wait(timeout=60) == 0
        assert "solami up: stopped" in up.stdout.read()
        for child in children:
            assert not _alive(child), f"child {child} left behind"
        assert not redis_reachable(redis_url)

        status = spawn(["-m", "solami", "status"], env)
        out, _ = finish(status, 30)
        assert status.returncode == 1
        assert "UNREACHABLE" in out
    finally:
        if up.poll() is None:
            up.kill()
            up.wait()
