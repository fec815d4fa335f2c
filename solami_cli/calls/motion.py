"""Body motion: text -> library clip, SMPL-X clip -> SOLAMI tokens or a caption, tokens ->
SMPL-X clip."""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from pathlib import Path

import grpc
import numpy as np

from solami.v1 import common_pb2, motion_pb2, motion_pb2_grpc
from solami_cli.call import CALL_TIMEOUT_S, new_turn

# Keys of the user's clip and the character's pose in the npz files the tools write.
USER_KEYS = (("poses", "trans"), ("poses_user", "trans_user"))
CHARACTER_KEYS = ("poses_ai", "trans_ai")


def _ids(text: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated ids, got {text!r}") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    operations = parser.add_subparsers(dest="operation", required=True)
    text = operations.add_parser("text2motion", help="motion phrase -> SMPL-X npz (library)")
    text.add_argument("text")
    text.add_argument("--seconds", type=float, default=0.0, help="duration (0: the clip's own)")
    text.add_argument("--out", type=Path, default=Path("motion.npz"), help="npz to write")
    text.add_argument(
        "--generate", action="store_true", help="generate from the text where the service can"
    )
    caption = operations.add_parser("caption", help="SMPL-X npz -> what the motion shows")
    caption.add_argument(
        "clip", type=Path, help="npz with poses (T,165), trans (T,3) (or poses_user/trans_user)"
    )
    caption.add_argument("--z-up", action="store_true", help="the npz data are Z-up (Blender)")
    encode = operations.add_parser("encode", help="SMPL-X npz -> trans, body and hand ids")
    encode.add_argument("clip", type=Path, help="npz with poses (T,165), trans (T,3)")
    encode.add_argument(
        "--character",
        type=Path,
        default=None,
        help="npz with the character's pose (poses, trans: one frame); default: poses_ai/"
        "trans_ai of the clip file, else the character stands at the origin facing +Z",
    )
    encode.add_argument("--z-up", action="store_true", help="the npz data are Z-up (Blender)")
    decode = operations.add_parser("decode", help="body and hand ids -> SMPL-X npz")
    decode.add_argument("--body", type=_ids, required=True, help="comma-separated body ids")
    decode.add_argument("--hand", type=_ids, required=True, help="comma-separated hand ids")
    decode.add_argument("--out", type=Path, default=Path("motion.npz"), help="npz to write")


def _frames(poses: np.ndarray, trans: np.ndarray, z_up: bool) -> motion_pb2.SmplxFrames:
    poses = np.atleast_2d(np.asarray(poses, dtype=np.float32))
    return motion_pb2.SmplxFrames(
        n_frames=len(poses),
        poses=poses.ravel().tolist(),
        trans=np.asarray(trans, dtype=np.float32).ravel().tolist(),
        up_axis=motion_pb2.UP_AXIS_Z if z_up else motion_pb2.UP_AXIS_Y,
    )


def _user_frames(data: np.lib.npyio.NpzFile, path: Path, z_up: bool) -> motion_pb2.SmplxFrames:
    """The user's clip of an npz (``poses``/``trans`` or ``poses_user``/``trans_user``)."""
    keys = next((k for k in USER_KEYS if set(k) <= set(data.files)), None)
    if keys is None:
        raise SystemExit(f"{path}: no poses/trans arrays (found {data.files})")
    return _frames(data[keys[0]], data[keys[1]], z_up)


def _encode_request(args: argparse.Namespace) -> motion_pb2.EncodeUserMotionRequest:
    with np.load(args.clip) as data:
        user = _user_frames(data, args.clip, args.z_up)
        character = motion_pb2.SmplxFrames()
        if set(CHARACTER_KEYS) <= set(data.files):
            character = _frames(data[CHARACTER_KEYS[0]], data[CHARACTER_KEYS[1]], args.z_up)
    if args.character is not None:
        with np.load(args.character) as data:
            character = _frames(data["poses"], data["trans"], args.z_up)
    return motion_pb2.EncodeUserMotionRequest(turn=new_turn(), user=user, character=character)


def _save(events: Iterable[motion_pb2.MotionEvent], out: Path) -> dict:
    poses, trans, result = [], [], {}
    for event in events:
        kind = event.WhichOneof("event")
        if kind == "header":
            result = {"source": event.header.source, "fps": event.header.fps}
            if event.header.score:
                result["score"] = round(event.header.score, 3)
        elif kind == "frames":
            block = event.frames.frames
            poses.append(np.asarray(block.poses, dtype=np.float32).reshape(block.n_frames, -1))
            trans.append(np.asarray(block.trans, dtype=np.float32).reshape(block.n_frames, 3))
    poses_array = np.concatenate(poses) if poses else np.zeros((0, 165), np.float32)
    trans_array = np.concatenate(trans) if trans else np.zeros((0, 3), np.float32)
    np.savez(out, poses=poses_array, trans=trans_array)
    frames = len(poses_array)
    fps = result.get("fps") or 30.0
    return {**result, "frames": frames, "duration_s": round(frames / fps, 3), "out": str(out)}


def call(args: argparse.Namespace, channel: grpc.Channel) -> dict:
    stub = motion_pb2_grpc.MotionServiceStub(channel)
    if args.operation == "text2motion":
        request = motion_pb2.TextToMotionRequest(
            turn=new_turn(), text=args.text, duration_s=args.seconds, generate=args.generate
        )
        return _save(stub.TextToMotion(request, timeout=CALL_TIMEOUT_S), args.out)
    if args.operation == "caption":
        with np.load(args.clip) as data:
            user = _user_frames(data, args.clip, args.z_up)
        request = motion_pb2.CaptionMotionRequest(turn=new_turn(), user=user)
        reply = stub.CaptionMotion(request, timeout=CALL_TIMEOUT_S)
        return {
            "caption": reply.caption,
            "score": round(reply.score, 3),
            "source": reply.source,
            "frames": user.n_frames,
            "processing_ms": reply.processing_ms,
        }
    if args.operation == "encode":
        reply = stub.EncodeUserMotion(_encode_request(args), timeout=CALL_TIMEOUT_S)
        return {
            "trans_id": reply.trans_id,
            "body_ids": list(reply.body_ids),
            "hand_ids": list(reply.hand_ids),
            "processing_ms": reply.processing_ms,
        }
    turn = new_turn()

    def messages():
        yield motion_pb2.DecodeMotionRequest(turn=turn, config=motion_pb2.MotionConfig())
        tokens = motion_pb2.MotionTokens(body_ids=args.body, hand_ids=args.hand)
        yield motion_pb2.DecodeMotionRequest(turn=turn, tokens=tokens)
        yield motion_pb2.DecodeMotionRequest(turn=turn, end=common_pb2.StreamEnd())

    return _save(stub.DecodeMotion(messages(), timeout=CALL_TIMEOUT_S), args.out)
