"""The compatibility API's reply files stay bounded: deleted once fetched, swept after their
TTL when nobody fetches them, capped in total size (a real relay process, real HTTP, real
Redis; the Test character's echo needs no service). Also the relay pod's layout: the headsets'
keys on a Redis beside the relay, the sessions on the shared one."""

from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path

import pytest
import redis

from solami.redis_local import start_local_redis
from tests.support.servers import free_port, wait_until
from tests.support.stack import Stack

QUESTION = Path(__file__).resolve().parents[1] / "solami_cli" / "data" / "question.wav"
# The echo replies with the user's WAV (about 0.1 MB) and a motion npz: two replies fit the
# cap, four do not.
CAP_MB = 0.25

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def stack(redis_url, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("relay-files")
    stack = Stack(
        redis_url,
        tmp,
        SOLAMI_RELAY_FILES_TTL_S="2",
        SOLAMI_RELAY_FILES_MAX_MB=str(CAP_MB),
    )
    stack.start("relay")
    try:
        stack.wait_ready(["relay"], timeout_s=60)
        yield stack
    finally:
        stack.stop_all()


def _files(stack: Stack) -> list[Path]:
    return sorted(Path(stack.env["SOLAMI_RELAY_FILES_DIR"]).glob("*.*"))


def _interact(stack: Stack) -> dict:
    status, created = stack.post_form("/create_session/", {"character": "Test"})
    assert status == 200, created
    status, reply = stack.post_form(
        "/interact/",
        {"session_id": created["session_id"]},
        {"audio": ("q.wav", QUESTION.read_bytes())},
    )
    assert status == 200, reply
    return reply


def _get(stack: Stack, path: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(stack.http_url + path, timeout=10) as reply:
            return reply.status, reply.read()
    except urllib.error.HTTPError as exc:
        return exc.code, b""


def test_each_file_is_served_once_then_deleted(stack):
    reply = _interact(stack)
    names = {Path(reply["motion_url"]).name, Path(reply["audio_url"]).name}
    assert names <= {p.name for p in _files(stack)}
    # The original relay's order: the motion, then the audio.
    status, motion = _get(stack, reply["motion_url"])
    assert status == 200 and motion[:2] == b"PK"
    status, wav = _get(stack, reply["audio_url"])
    assert status == 200 and wav[:4] == b"RIFF"
    wait_until(lambda: not names & {p.name for p in _files(stack)}, "fetched files deleted", 5)
    assert _get(stack, reply["audio_url"])[0] == 404


def test_unfetched_files_are_swept_after_their_ttl(stack):
    reply = _interact(stack)
    names = {Path(reply["motion_url"]).name, Path(reply["audio_url"]).name}
    assert names <= {p.name for p in _files(stack)}
    # TTL 2 s, sweeps every 0.5 s, with no request arriving meanwhile.
    wait_until(lambda: not names & {p.name for p in _files(stack)}, "unfetched files swept", 10)
    assert _get(stack, reply["motion_url"])[0] == 404


def test_total_size_stays_under_the_cap_oldest_first(stack):
    cap_bytes = CAP_MB * 1024 * 1024
    replies = [_interact(stack) for _ in range(4)]
    files = _files(stack)
    newest = {Path(replies[-1][key]).name for key in ("motion_url", "audio_url")}
    one_reply = sum(p.stat().st_size for p in files if p.name in newest)
    assert one_reply < cap_bytes / 2 and 4 * one_reply > cap_bytes
    assert sum(p.stat().st_size for p in files) <= cap_bytes
    # The newest reply is whole and served; the oldest made room for it.
    status, wav = _get(stack, replies[-1]["audio_url"])
    assert status == 200 and wav[:4] == b"RIFF"
    assert _get(stack, replies[0]["audio_url"])[0] == 404


def test_readiness_stays_while_liveness_answers(stack):
    status, _ = _get(stack, "/livez")
    assert status == 200
    assert _get(stack, "/healthz")[0] == 200


def test_headset_keys_live_on_the_headset_redis(redis_url, tmp_path):
    headset_url = f"redis://127.0.0.1:{free_port()}/0"
    headset_redis = start_local_redis(headset_url)
    # The shared Redis's database 3, which no other test's relay uses.
    shared_url = redis_url.rsplit("/", 1)[0] + "/3"
    stack = Stack(shared_url, tmp_path, SOLAMI_RELAY_HEADSET_REDIS_URL=headset_url)
    try:
        shared = redis.Redis.from_url(shared_url)
        shared.delete("aiStream")
        stack.start("relay")
        stack.wait_ready(["relay"], timeout_s=60)
        beside = redis.Redis.from_url(headset_url)
        # The idle animation streams to the headset's Redis, not to the shared one.
        wait_until(lambda: beside.xlen("aiStream") > 0, "aiStream on the headset Redis", 20)
        assert not shared.exists("aiStream")
        status, created = stack.post_form("/create_session/", {"character": "Test"})
        assert status == 200
        sessions = redis.Redis.from_url(redis_url.rsplit("/", 1)[0] + "/1")
        keys = list(sessions.scan_iter())
        assert any(created["session_id"].encode() in key for key in keys), keys
    finally:
        stack.stop_all()
        headset_redis.stop()
