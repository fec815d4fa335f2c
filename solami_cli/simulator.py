"""``solami headset``: a Quest client simulator speaking the exact headset protocol.

Like the Unity client it flushes its Redis database, sets ``char_id``, connects its WebSocket
once, streams ``userStream`` at 30 Hz while the user "talks", then sends the utterance as one
10 s WAV. It records every reply WAV and the ``aiStream`` frames, and prints a latency timeline.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from relay.quest.keys import LAST_TURN as LAST_TURN_KEY
from solami import audio
from solami.registry import redis_url

HEADSET_RATE_HZ = 44_100
HEADSET_CLIP_S = 10.0
USER_FPS = 30
# The reply is over when no WAV came for this long after the last one ended.
QUIET_AFTER_S = 1.5
# Seconds to wait, after the last reply, for the relay's report of the turn.
RELAY_TURN_WAIT_S = 3.0


def headset_wav(path: Path) -> bytes:
    """The file as the headset would send it: 44.1 kHz mono PCM16, exactly 10 s."""
    samples, rate = sf.read(path, dtype="float32", always_2d=True)
    mono = audio.resample(samples.mean(axis=1), rate, HEADSET_RATE_HZ)
    clip = np.zeros(int(HEADSET_CLIP_S * HEADSET_RATE_HZ), np.float32)
    clip[: min(len(mono), len(clip))] = mono[: len(clip)]
    return audio.encode_wav(clip, HEADSET_RATE_HZ)


def speech_seconds(wav: bytes) -> float:
    samples, rate = sf.read(io.BytesIO(wav), dtype="float32")
    loud = np.flatnonzero(np.abs(samples) > 0.01)
    return (loud[-1] + 1) / rate if len(loud) else 0.0


def user_motion(npz: Path | None, frames: int) -> list[dict[str, str]]:
    """userStream entries: the npz clip (looped) or a person standing still."""
    if npz is not None:
        with np.load(npz) as data:
            poses, trans = data["poses"], data["trans"]
    else:
        poses, trans = np.zeros((1, 165), np.float32), np.zeros((1, 3), np.float32)
    from relay.quest.coords import smplx_to_unity_user_frames

    index = np.arange(frames) % len(poses)
    return smplx_to_unity_user_frames(poses[index], trans[index])


async def run(args: argparse.Namespace) -> dict:
    import redis.asyncio as aioredis
    from websockets.asyncio.client import connect

    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    wav = headset_wav(args.wav)
    r = aioredis.Redis.from_url(args.redis)
    await r.flushdb()
    await r.set("char_id", args.character)
    timeline: dict[str, float] = {}
    replies: list[tuple[float, bytes]] = []
    async with connect(args.ws, max_size=None) as ws:
        await asyncio.sleep(args.settle_s)  # the relay picks up char_id and its idle animation
        talk_s = max(0.5, speech_seconds(wav))
        for fields in user_motion(args.motion, int(talk_s * USER_FPS)):
            await r.xadd("userStream", fields)
            await asyncio.sleep(1 / USER_FPS)
        last = await r.xrevrange("aiStream", count=1)
        start_id = last[0][0] if last else b"0-0"
        await r.delete("change_id")
        sent = time.time()
        await ws.send(wav)
        deadline = sent + args.timeout_s
        quiet_until = deadline
        while time.time() < min(deadline, quiet_until):
            try:
                message = await asyncio.wait_for(ws.recv(), timeout=0.1)
            except TimeoutError:
                continue
            if isinstance(message, bytes):
                arrived = time.time() - sent
                replies.append((arrived, message))
                duration = (
                    len(sf.read(io.BytesIO(message))[0]) / sf.info(io.BytesIO(message)).samplerate
                )
                quiet_until = time.time() + duration + QUIET_AFTER_S
        frames = await r.xrange("aiStream", min=f"({start_id.decode()}")
        change = await r.get("change_id")
        relay_turn = await _relay_turn(r)
    await r.aclose()
    frame_times = [int(entry_id.decode().split("-")[0]) / 1000 - sent for entry_id, _ in frames]
    if replies:
        timeline["first_reply_wav_s"] = round(replies[0][0], 3)
    if change:
        change_ms = int(change.decode().split("-")[0]) / 1000
        timeline["first_answer_frame_s"] = round(change_ms - sent, 3)
    if relay_turn:  # the relay's own per-stage times, from the WAV's arrival
        timeline["outcome"] = relay_turn.get("outcome", "")
        for stage, ms in relay_turn.get("stages_ms", {}).items():
            timeline[f"relay_{stage}_s"] = round(ms / 1000, 3)
    timeline["reply_wavs"] = len(replies)
    timeline["aistream_frames"] = len(frames)
    if len(frame_times) > 1:
        timeline["aistream_fps"] = round(
            (len(frame_times) - 1) / max(1e-6, frame_times[-1] - frame_times[0]), 1
        )
    for i, (_, data) in enumerate(replies):
        (out / f"reply_{i}.wav").write_bytes(data)
    with open(out / "aistream.jsonl", "w") as f:
        for (entry_id, fields), t in zip(frames, frame_times, strict=True):
            record = {k.decode(): v.decode() for k, v in fields.items()}
            f.write(json.dumps({"id": entry_id.decode(), "t_s": round(t, 3), **record}) + "\n")
    (out / "timeline.json").write_text(json.dumps(timeline, indent=2) + "\n")
    return timeline


async def _relay_turn(r, wait_s: float = RELAY_TURN_WAIT_S) -> dict:
    """The relay's report of the turn (``LAST_TURN_KEY``), once it has written it."""
    deadline = time.time() + wait_s
    while True:
        raw = await r.get(LAST_TURN_KEY)
        if raw is not None or time.time() > deadline:
            return json.loads(raw) if raw is not None else {}
        await asyncio.sleep(0.1)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--wav", type=Path, required=True, help="what the user says")
    parser.add_argument("--motion", type=Path, default=None, help="SMPL-X npz of the user")
    parser.add_argument("--character", default="Vrmgirl", help="Unity char_id")
    parser.add_argument("--out", type=Path, default=Path("headset-output"))
    parser.add_argument("--ws", default="ws://127.0.0.1:8099")
    parser.add_argument("--redis", default=redis_url())
    parser.add_argument("--timeout-s", type=float, default=60.0)
    parser.add_argument("--settle-s", type=float, default=1.5)


def main(args: argparse.Namespace) -> int:
    if not args.wav.is_file():
        print(f"solami headset: no such file: {args.wav}")
        return 2
    timeline = asyncio.run(run(args))
    for key, value in timeline.items():
        print(f"{key:<22} {value}")
    return 0 if timeline.get("reply_wavs") else 1
