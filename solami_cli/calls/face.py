"""Face animation: a WAV file -> 30 fps ARKit blendshapes, saved as a face npz."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np

from solami.avatar.face_npz import write_npz
from solami.v1 import common_pb2, face_pb2, face_pb2_grpc
from solami_cli.call import CALL_TIMEOUT_S, new_turn

# Bytes of the WAV file per request message.
CHUNK_BYTES = 64 * 1024


def add_arguments(parser: argparse.ArgumentParser) -> None:
    operations = parser.add_subparsers(dest="operation", required=True)
    animate = operations.add_parser("animate", help="WAV -> face npz (original face_ai layout)")
    animate.add_argument("wav", type=Path)
    animate.add_argument("--out", type=Path, default=Path("face.npz"), help="npz to write")
    animate.add_argument("--backend", default="", help="viseme or unitalker (default: service's)")


def requests(wav: bytes, backend: str) -> Iterator[face_pb2.AnimateRequest]:
    """An Animate request stream carrying a whole WAV file."""
    turn = new_turn()
    header = common_pb2.AudioHeader(encoding=common_pb2.AUDIO_ENCODING_WAV)
    config = face_pb2.FaceConfig(audio=header, backend=backend)
    yield face_pb2.AnimateRequest(turn=turn, config=config)
    for start in range(0, len(wav), CHUNK_BYTES):
        chunk = common_pb2.AudioChunk(data=wav[start : start + CHUNK_BYTES])
        yield face_pb2.AnimateRequest(turn=turn, audio=chunk)
    yield face_pb2.AnimateRequest(turn=turn, end=common_pb2.StreamEnd())


def call(args: argparse.Namespace, channel: grpc.Channel) -> dict:
    stub = face_pb2_grpc.FaceServiceStub(channel)
    events = stub.Animate(requests(args.wav.read_bytes(), args.backend), timeout=CALL_TIMEOUT_S)
    header, blocks, end = None, [], None
    for event in events:
        kind = event.WhichOneof("event")
        if kind == "header":
            header = event.header
        elif kind == "frames":
            weights = np.array(event.frames.weights, dtype=np.float32)
            blocks.append(weights.reshape(event.frames.n_frames, len(header.channel_names)))
        else:
            end = event.end
    frames = np.concatenate(blocks) if blocks else np.zeros((0, len(header.channel_names)))
    write_npz(args.out, frames)
    return {
        "n_frames": len(frames),
        "fps": header.fps,
        "backend": header.backend,
        "duration_s": round(end.audio_ms / 1000, 3),
        "processing_ms": end.processing_ms,
        "out": str(args.out),
    }
