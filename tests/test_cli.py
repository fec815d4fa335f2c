"""`solami up` and `solami status` with real Redis and real service processes; `--rig-data`."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from solami.redis_local import redis_reachable
from solami.registry import RELAY, SERVICES
from solami_cli.main import build_parser, main
from tests.support.servers import finish, free_port, spawn

pytestmark = pytest.mark.e2e

# The relay's settings error for a rig data directory without bone_data/.
NO_RIG_DATA = "SOLAMI_RIG_DATA must be a directory with bone_data/ and retargetmap/, got"


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


def _redis_workdir(pids: list[int]) -> Path:
    """The working directory (``--dir``) of the redis-server among ``pids``.

    redis-server chdirs into its ``--dir`` and rewrites its command line, so the directory is
    read from /proc/<pid>/cwd.
    """
    for pid in pids:
        if Path(f"/proc/{pid}/comm").read_text().strip() == "redis-server":
            return Path(os.readlink(f"/proc/{pid}/cwd"))
    raise AssertionError("solami up started no redis-server")


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
    up = spawn(["-m", "solami_cli", "up", "--timeout", "180"], env, stderr_path=up_log)
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
        redis_dir = _redis_workdir(children)
        assert redis_dir.name.startswith("solami-redis-") and redis_dir.is_dir()

        status = spawn(["-m", "solami_cli", "status", "--timeout", "10"], env)
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
        assert not redis_dir.exists(), f"{redis_dir} left behind"

        status = spawn(["-m", "solami_cli", "status"], env)
        out, _ = finish(status, 30)
        assert status.returncode == 1
        assert "UNREACHABLE" in out
    finally:
        if up.poll() is None:
            up.kill()
            up.wait()


@pytest.mark.parametrize("command", [["serve", "relay"], ["up"]])
def test_rig_data_must_be_an_existing_directory(command, tmp_path, capsys):
    missing = tmp_path / "missing"
    with pytest.raises(SystemExit) as exited:
        main([*command, "--rig-data", str(missing)])
    assert exited.value.code == 2
    assert f"argument --rig-data: no such directory: {missing}" in capsys.readouterr().err
    args = build_parser().parse_args([*command, "--rig-data", str(tmp_path)])
    assert args.rig_data == tmp_path


def test_serve_rig_data_is_for_the_relay_only(tmp_path, capsys):
    assert main(["serve", "asr", "--rig-data", str(tmp_path)]) == 2
    assert "--rig-data only applies to the relay" in capsys.readouterr().err


def test_serve_relay_rig_data_reaches_the_relay_settings(tmp_path, monkeypatch, capsys):
    # The option wins over both variables; a directory without bone_data/ stops the relay at
    # start, before it binds anything, with the settings error naming the directory.
    monkeypatch.setenv("SOLAMI_RIG_DATA", "/nonexistent")
    monkeypatch.setenv("SOLAMI_RELAY_RIG_DATA", "/nonexistent")
    assert main(["serve", "relay", "--rig-data", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert f"{NO_RIG_DATA} {tmp_path.resolve()}" in err


def test_up_passes_rig_data_to_the_relay(tmp_path):
    env = {
        "SOLAMI_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",
        "SOLAMI_RELAY_HOST": "127.0.0.1",
        "SOLAMI_RELAY_PORT": str(free_port()),
        "SOLAMI_RELAY_HTTP_PORT": str(free_port()),
        "SOLAMI_RELAY_METRICS_PORT": "-1",
        "SOLAMI_RELAY_RIG_DATA": "/nonexistent",
    }
    up = spawn(
        [
            "-m",
            "solami_cli",
            "up",
            "--only",
            "relay",
            "--rig-data",
            str(tmp_path),
            "--timeout",
            "60",
        ],
        env,
    )
    _out, err = finish(up, 120)
    assert up.returncode == 1
    assert "relay exited during start" in err
    assert f"{NO_RIG_DATA} {tmp_path.resolve()}" in err
