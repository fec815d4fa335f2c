"""The relay end to end: every service and the relay as real processes, real Redis, the
headset simulator speaking the Quest protocol over a real WebSocket."""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import email.parser
import io
import json
import signal
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import redis

from relay.headset.runner import STOP_WAV
from solami import audio
from solami.avatar.skeleton import convert_up_axis
from solami.methods import METHODS
from solami_cli import simulator
from tests.support.servers import wait_until
from tests.support.stack import RIG_DATA, Stack

pytestmark = pytest.mark.e2e

QUESTION = Path(__file__).resolve().parents[1] / "solami_cli" / "data" / "question.wav"
SERVICES = ["asr", "llm", "tts", "motion", "face"]


@pytest.fixture(scope="module")
def stack(redis_url, tmp_path_factory):
    running = Stack(redis_url, tmp_path_factory.mktemp("stack"), headsets="main:{}:4,second:{}:5")
    running.env["SOLAMI_RELAY_HEADSETS"] = running.env["SOLAMI_RELAY_HEADSETS"].format(
        running.env["SOLAMI_RELAY_PORT"], _free_port()
    )
    for name in [*SERVICES, "relay"]:
        running.start(name)
    try:
        running.wait_ready([*SERVICES, "relay"])
        yield running
    finally:
        running.stop_all()


def _free_port() -> int:
    from tests.support.servers import free_port

    return free_port()


def _headset_port(stack: Stack, name: str) -> int:
    for spec in stack.env["SOLAMI_RELAY_HEADSETS"].split(","):
        parts = spec.split(":")
        if parts[0] == name:
            return int(parts[1])
    raise KeyError(name)


def _db(stack: Stack, name: str) -> int:
    for spec in stack.env["SOLAMI_RELAY_HEADSETS"].split(","):
        parts = spec.split(":")
        if parts[0] == name:
            return int(parts[2])
    raise KeyError(name)


def _talk(
    stack: Stack,
    tmp: Path,
    character: str = "Smplx",
    headset: str = "main",
    wav: Path = QUESTION,
    **options,
) -> dict:
    base = stack.env["SOLAMI_REDIS_URL"].rsplit("/", 1)[0]
    args = argparse.Namespace(
        wav=wav,
        motion=options.get("motion"),
        character=character,
        out=tmp,
        ws=f"ws://127.0.0.1:{_headset_port(stack, headset)}",
        redis=f"{base}/{_db(stack, headset)}",
        timeout_s=options.get("timeout_s", 60.0),
        settle_s=options.get("settle_s", 1.5),
    )
    timeline = asyncio.run(simulator.run(args))
    # The turn is over for the relay too (its last sentence played, the session saved) before
    # the next step of a test looks at Redis or starts another turn.
    wait_until(lambda: stack.metric("solami_relay_inflight_turns") == 0, "the turn ending", 60)
    return timeline


def _wait_for_metric(stack: Stack, name: str, at_least: float, timeout_s: float = 10) -> None:
    wait_until(lambda: stack.metric(name) >= at_least, f"{name} reaching {at_least}", timeout_s)


def _frames(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "aistream.jsonl").read_text().splitlines()]


def test_full_turn_smplx(stack, tmp_path):
    timeline = _talk(stack, tmp_path, "Smplx")
    assert timeline["reply_wavs"] >= 1, timeline
    assert 15 <= timeline["aistream_fps"] <= 45  # 30 fps, measured on a busy machine
    # The relay's per-stage times of this turn, in order.
    assert timeline["outcome"] == "ok"
    stages = [timeline[f"relay_{s}_s"] for s in ("asr", "tts_first_audio", "first_reply")]
    assert 0 < stages[0] <= stages[1] <= stages[2]
    frames = _frames(tmp_path)
    assert "pelvis_rotation" in frames[0] and "jawOpen" in frames[0]
    jaw = np.array([float(f["jawOpen"]) for f in frames])
    assert jaw.max() > 0.1, "the mouth moves while the character speaks"
    reply, rate = audio.decode_wav((tmp_path / "reply_0.wav").read_bytes(), 60)
    assert len(reply) > 0 and np.abs(reply).max() > 0.05
    # Each sentence WAV ends in the silence its early sending may cut, never in speech.
    assert np.abs(reply[-int(0.1 * rate) :]).max() < 1e-3


def test_full_turn_retargeted_character(stack, tmp_path):
    if not RIG_DATA.is_dir():
        pytest.skip("the SOLAMI rig data (../shared/solami-data) is not here")
    timeline = _talk(stack, tmp_path, "Batman")
    assert timeline["reply_wavs"] >= 1
    fields = _frames(tmp_path)[-1]
    rig = json.loads((RIG_DATA / "bone_data" / "Batman.json").read_text())["bones"]
    bones = {key.removesuffix("_rotation") for key in fields if key.endswith("_rotation")}
    assert bones and bones <= set(rig)


def _speaking_scenario(stack: Stack, char_id: str, cut_after_s: float) -> dict:
    """Asks the question, speaks again ``cut_after_s`` seconds after the first reply WAV
    arrives, and records when every WAV arrived (seconds, time.time()) and when the second
    utterance was sent."""
    base = stack.env["SOLAMI_REDIS_URL"].rsplit("/", 1)[0]
    r = redis.Redis.from_url(f"{base}/{_db(stack, 'main')}")
    r.set("char_id", char_id)
    time.sleep(1.5)  # a character change resets the session: let the relay take it first

    async def scenario() -> dict:
        from websockets.asyncio.client import connect

        wav = simulator.headset_wav(QUESTION)
        got: list[tuple[float, bytes]] = []
        async with connect(stack.ws_url, max_size=None) as ws:

            async def receive() -> None:
                while True:
                    message = await ws.recv()
                    got.append((time.time(), message))

            receiving = asyncio.create_task(receive())
            await ws.send(wav)
            async with asyncio.timeout(30):
                while not got:
                    await asyncio.sleep(0.005)
            await asyncio.sleep(cut_after_s)
            cut_at = time.time()
            await ws.send(wav)  # the user speaks again while the character answers
            async with asyncio.timeout(30):
                while not any(t > cut_at and m != STOP_WAV for t, m in got):
                    await asyncio.sleep(0.005)
            receiving.cancel()
        return {"got": got, "cut_at": cut_at}

    return asyncio.run(scenario())


def test_barge_in_silences_the_reply_at_once_and_the_next_turn_works(stack, tmp_path):
    """The Test character echoes the 10 s headset clip, so its reply is surely playing 1 s in:
    the headset's playback is replaced by silence within 150 ms of the new utterance."""
    before = stack.metric("solami_relay_barge_ins_total")
    run = _speaking_scenario(stack, "Test", cut_after_s=1.0)
    after_cut = [(t, wav) for t, wav in run["got"] if t > run["cut_at"]]
    (stopped_at, stop), (_, answer) = after_cut[:2]
    assert stop == STOP_WAV and answer != STOP_WAV
    assert stopped_at - run["cut_at"] <= 0.15
    _wait_for_metric(stack, "solami_relay_barge_ins_total", before + 1)
    assert stack.metric("solami_relay_cut_to_silence_seconds_count") >= 1


def test_a_cut_reply_leaves_the_face_listening(stack, tmp_path):
    base = stack.env["SOLAMI_REDIS_URL"].rsplit("/", 1)[0]
    r = redis.Redis.from_url(f"{base}/{_db(stack, 'main')}")
    run = _speaking_scenario(stack, "Smplx", cut_after_s=0.3)
    cut_at, first_at = run["cut_at"], run["got"][0][0]
    replies_after = [t for t, wav in run["got"] if t > cut_at and wav != STOP_WAV]
    frames = r.xrange("aiStream", min=int(first_at * 1000))
    jaw = [(int(i.decode().split("-")[0]) / 1000, float(f[b"jawOpen"])) for i, f in frames]
    assert any(value > 0.1 for t, value in jaw if t < cut_at)  # it was talking
    listening = [value for t, value in jaw if cut_at + 0.15 <= t < replies_after[0]]
    assert listening and max(listening) < 0.1


def test_bad_messages_never_break_the_connection(stack, tmp_path):
    async def scenario() -> list[bytes]:
        from websockets.asyncio.client import connect

        got = []
        async with connect(stack.ws_url, max_size=None) as ws:
            await ws.send("hello, I am text")
            await ws.send(b"\x00\x01 not a wav at all")
            await ws.send(b"RIFF\x10\x00\x00\x00WAVEjunk")  # a broken WAV: apology expected
            got.append(await asyncio.wait_for(ws.recv(), 30))
        return got

    replies = asyncio.run(scenario())
    assert replies[0][:4] == b"RIFF"
    assert stack.metric('solami_relay_errors_total{kind="not_wav"}') >= 2
    timeline = _talk(stack, tmp_path, "Smplx")
    assert timeline["reply_wavs"] >= 1


def test_unknown_char_id_and_broken_stream_entries_are_skipped(stack, tmp_path):
    base = stack.env["SOLAMI_REDIS_URL"].rsplit("/", 1)[0]
    r = redis.Redis.from_url(f"{base}/{_db(stack, 'main')}")
    before = stack.metric('solami_relay_errors_total{kind="char_id"}')
    r.set("char_id", "Gandalf")
    _wait_for_metric(stack, 'solami_relay_errors_total{kind="char_id"}', before + 1)
    r.set("char_id", "Smplx")
    time.sleep(1.5)  # the relay takes the character (a change resets the session)
    # A broken user motion frame waits in userStream when the utterance arrives: the turn
    # skips it (counted) and answers.
    bad_frames = stack.metric('solami_relay_errors_total{kind="user_stream"}')
    r.xadd("userStream", {"pelvis_rotation": "not,a,quaternion"})
    for _ in range(5):
        r.xadd("aifbStream", {"garbage": "1"})

    async def utterance() -> bytes:
        from websockets.asyncio.client import connect

        async with connect(stack.ws_url, max_size=None) as ws:
            await ws.send(simulator.headset_wav(QUESTION))
            return await asyncio.wait_for(ws.recv(), 60)

    assert asyncio.run(utterance())[:4] == b"RIFF"
    assert stack.metric('solami_relay_errors_total{kind="user_stream"}') >= bad_frames + 1
    # Input streams stay bounded whatever the method: aifbStream keeps its newest snapshot.
    wait_until(lambda: r.xlen("aifbStream") <= 1, "aifbStream being trimmed", 10)
    timeline = _talk(stack, tmp_path, "Smplx", settle_s=1.5)
    assert timeline["reply_wavs"] >= 1


def test_a_service_dying_mid_turn_gives_an_apology_and_recovery(stack, tmp_path):
    """tts is killed (SIGKILL) while the turn runs: once the LLM is generating the reply, before
    any of it has been spoken. The headset still gets an answer (the apology), the relay keeps
    running, and the next turn works once tts is back."""
    before = stack.metric('solami_relay_errors_total{kind="tts"}')
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        turn = pool.submit(_talk, stack, tmp_path / "down", "Smplx", timeout_s=60)
        try:
            _wait_until(
                lambda: (
                    stack.service_metric("llm", 'solami_llm_inflight_requests{method="Generate"}')
                    >= 1
                ),
                turn,
            )
            stack.stop("tts", signal.SIGKILL)
            timeline = turn.result(90)
        finally:
            stack.start("tts")
    assert timeline["reply_wavs"] >= 1  # the apology (a chime when no voice is reachable)
    assert stack.metric('solami_relay_errors_total{kind="tts"}') >= before + 1
    stack.wait_ready(["tts", "relay"])
    stack.wait_relay_connected(["tts"])
    timeline = _talk(stack, tmp_path / "up", "Smplx")
    assert timeline["reply_wavs"] >= 1


def _wait_until(condition, turn: concurrent.futures.Future, timeout_s: float = 60) -> None:
    """``condition`` held while ``turn`` still runs."""
    wait_until(lambda: turn.done() or condition(), "the condition", timeout_s, 0.01)
    assert not turn.done(), f"the turn ended before the condition held: {turn.result()}"


def test_two_headsets_at_once_keep_their_data_apart(stack, tmp_path):
    async def both() -> list[dict]:
        loop = asyncio.get_running_loop()
        return await asyncio.gather(
            loop.run_in_executor(None, lambda: _talk(stack, tmp_path / "a", "Smplx", "main")),
            loop.run_in_executor(None, lambda: _talk(stack, tmp_path / "b", "Batman", "second")),
        )

    first, second = asyncio.run(both())
    assert first["reply_wavs"] >= 1 and second["reply_wavs"] >= 1
    a_bones = {k for k in _frames(tmp_path / "a")[-1] if k.endswith("_rotation")}
    b_bones = {k for k in _frames(tmp_path / "b")[-1] if k.endswith("_rotation")}
    assert "pelvis_rotation" in a_bones
    if RIG_DATA.is_dir():
        assert not a_bones & b_bones


def test_session_history_survives_a_relay_restart(stack, tmp_path):
    base = stack.env["SOLAMI_REDIS_URL"].rsplit("/", 1)[0]
    sessions = redis.Redis.from_url(f"{base}/1")
    _talk(stack, tmp_path / "one", "Smplx")
    session_id = sessions.get("solami:headset:main:session").decode()
    turns = json.loads(sessions.get(f"solami:session:{session_id}"))["turns"]
    stack.stop("relay")
    stack.start("relay")
    stack.wait_ready(["relay"])
    _talk(stack, tmp_path / "two", "Smplx")
    session = json.loads(sessions.get(f"solami:session:{session_id}"))
    assert session["turns"] == turns + 1
    assert session["history"][-1]["role"] == "character"


def test_compatibility_api(stack):
    post = stack.post_form
    status, created = post(
        "/create_session/", {"session_name": "t", "method": "dlp+retrieval", "character": "Batman"}
    )
    assert status == 200
    sid = created["session_id"]
    status, reply = post(
        "/interact/", {"session_id": sid}, {"audio": ("q.wav", QUESTION.read_bytes())}
    )
    assert status == 200, reply
    with urllib.request.urlopen(stack.http_url + reply["audio_url"], timeout=10) as got:
        assert got.read()[:4] == b"RIFF"
    with urllib.request.urlopen(stack.http_url + reply["motion_url"], timeout=10) as got:
        import io

        with np.load(io.BytesIO(got.read())) as npz:
            assert npz["poses"].shape[1] == 165 and npz["trans"].shape[1] == 3
    assert post("/interact/", {"session_id": sid}, {"audio": ("q.wav", b"junk")})[0] == 422
    assert post("/create_session/", {"character": "Gandalf"})[0] == 422
    status, refused = post("/create_session/", {"method": "dlp+gpt4"})
    assert status == 422
    assert all(method in refused["detail"] for method in METHODS), refused
    assert post("/delete_session/", {"session_id": sid})[0] == 200
    assert post("/delete_session/", {"session_id": sid})[0] == 404


ORIGINAL_RELAY = Path(__file__).resolve().parent / "fixtures" / "original_relay"


def _replayed(stack: Stack, name: str, **swaps: str) -> tuple[int, bytes]:
    """A request of the original relay, recorded byte for byte (fixtures/original_relay), sent
    to our relay with the recorded session id / file name swapped for ours (same length, so
    every byte count still holds)."""
    manifest = json.loads((ORIGINAL_RELAY / "manifest.json").read_text())
    request = (ORIGINAL_RELAY / name).read_bytes()
    for key, ours in swaps.items():
        recorded = manifest[key]
        assert len(ours) == len(recorded) and recorded.encode() in request
        request = request.replace(recorded.encode(), ours.encode())
    return stack.send_raw(request)


def _recorded_user_motion() -> tuple[np.ndarray, np.ndarray]:
    """The user's motion in the recorded /interact/ request, Y-up as our relay reads it."""
    head, _, body = (ORIGINAL_RELAY / "1_interact.http").read_bytes().partition(b"\r\n\r\n")
    kind = next(line for line in head.split(b"\r\n") if line.startswith(b"Content-Type"))
    form = email.parser.BytesParser().parsebytes(kind + b"\r\n\r\n" + body)
    (part,) = [
        p
        for p in form.get_payload()
        if p.get_param("name", header="content-disposition") == "motion"
    ]
    with np.load(io.BytesIO(part.get_payload(decode=True))) as npz:
        return convert_up_axis(npz["poses"], npz["trans"])


def _download(stack: Stack, url: str) -> bytes:
    """A reply file fetched as the original relay fetches it (``download_file``)."""
    recorded = "2_download_motion.http" if url.endswith(".npz") else "3_download_audio.http"
    status, body = _replayed(stack, recorded, file_name=url.rsplit("/", 1)[-1].split(".")[0])
    assert status == 200, body
    return body


def test_the_original_relays_exchange_replayed_byte_for_byte(stack):
    """The original relay's requests (its config.json method dlp+motiongpt+retrieval, the
    /interact/ multipart with its npz, the two downloads, a character change) as its code
    sends them; every reply is what that code then reads."""
    status, body = _replayed(stack, "0_create_session.http")
    assert status == 200, body
    session_id = json.loads(body)["session_id"]
    sessions = redis.Redis.from_url(stack.env["SOLAMI_REDIS_URL"].rsplit("/", 1)[0] + "/1")
    stored = json.loads(sessions.get(f"solami:session:{session_id}"))
    assert (stored["method"], stored["character"]) == ("dlp+motiongpt+retrieval", "Samantha")

    status, body = _replayed(stack, "1_interact.http", session_id=session_id)
    assert status == 200, body
    reply = json.loads(body)
    assert reply["text"]
    # The original relay fetches url + motion_url and url + audio_url.
    with np.load(io.BytesIO(_download(stack, reply["motion_url"]))) as motion:
        assert motion["poses"].shape[1:] == (165,) and len(motion["poses"]) > 1
        assert motion["trans"].shape == (len(motion["poses"]), 3)
    samples, rate = audio.decode_wav(_download(stack, reply["audio_url"]), 60)
    assert len(samples) / rate > 0.5
    # The user waved (the npz is the wave clip, Z-up as the original relay writes it): the
    # caption of that motion entered the turn's user message.
    history = json.loads(sessions.get(f"solami:session:{session_id}"))["history"]
    assert "wav" in history[-2]["motion"].lower(), history[-2]

    status, body = _replayed(stack, "4_delete_session.http", session_id=session_id)
    assert status == 200, body
    assert sessions.get(f"solami:session:{session_id}") is None

    # The test character echoes the user's own WAV and motion.
    status, body = _replayed(stack, "5_create_session_test_character.http")
    assert status == 200, body
    echo_id = json.loads(body)["session_id"]
    status, body = _replayed(stack, "1_interact.http", session_id=echo_id)
    assert status == 200, body
    reply = json.loads(body)
    echoed, rate = audio.decode_wav(_download(stack, reply["audio_url"]), 60)
    question, question_rate = audio.decode_wav(QUESTION.read_bytes(), 60)
    assert rate == question_rate and np.allclose(echoed, question, atol=1 / 32768)
    poses, trans = _recorded_user_motion()
    with np.load(io.BytesIO(_download(stack, reply["motion_url"]))) as motion:
        assert np.allclose(motion["poses"], poses, atol=1e-5)
        # Where the character stands: the user's steps kept, the floor position from zero.
        assert np.allclose(motion["trans"][:, 1], trans[:, 1], atol=1e-5)
        assert np.allclose(motion["trans"][0, [0, 2]], 0)
