"""``solami call <service> <operation> ...``: one RPC from the command line, JSON out.

A failed call prints the service's status and message to stderr and exits non-zero.
"""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from pathlib import Path

import grpc
from google.protobuf.json_format import MessageToDict

from solami.client import sync_channel
from solami.registry import SERVICES
from solami.v1 import common_pb2

# Seconds a CLI call may take.
CALL_TIMEOUT_S = 120.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    services = parser.add_subparsers(dest="service", required=True)
    asr = services.add_parser("asr", help="speech in")
    asr_ops = asr.add_subparsers(dest="operation", required=True)
    transcribe = asr_ops.add_parser("transcribe", help="WAV -> text")
    transcribe.add_argument("wav", type=Path)
    transcribe.add_argument("--language", default="", help="ISO 639-1 hint (default: service's)")
    transcribe.add_argument("--words", action="store_true", help="include word timings")
    tokenize = asr_ops.add_parser("tokenize", help="WAV -> SpeechTokenizer units")
    tokenize.add_argument("wav", type=Path)
    tokenize.add_argument("--layers", type=int, default=1, help="RVQ layers to return (1-8)")


def _turn() -> common_pb2.TurnContext:
    return common_pb2.TurnContext(session_id="cli", turn_id=uuid.uuid4().hex[:12])


def _asr(args: argparse.Namespace, channel: grpc.Channel) -> dict:
    from solami.v1 import asr_pb2, asr_pb2_grpc

    stub = asr_pb2_grpc.AsrServiceStub(channel)
    wav = args.wav.read_bytes()
    if args.operation == "transcribe":
        reply = stub.Transcribe(
            asr_pb2.TranscribeRequest(
                turn=_turn(), wav=wav, language=args.language, word_timestamps=args.words
            ),
            timeout=CALL_TIMEOUT_S,
        )
        return {
            "text": reply.text,
            "language": reply.language,
            "segments": [
                MessageToDict(s, preserving_proto_field_name=True) for s in reply.segments
            ],
            "duration_s": round(reply.audio_duration_s, 3),
            "speech_duration_s": round(reply.speech_duration_s, 3),
            "confidence": round(reply.confidence, 3),
            "processing_ms": reply.processing_ms,
            "backend": reply.backend,
        }
    reply = stub.Tokenize(
        asr_pb2.TokenizeRequest(turn=_turn(), wav=wav, num_layers=args.layers),
        timeout=CALL_TIMEOUT_S,
    )
    result = {
        "units": list(reply.layers[0].ids) if reply.layers else [],
        "frame_rate_hz": reply.frame_rate_hz,
        "speech_duration_s": round(reply.speech_duration_s, 3),
        "processing_ms": reply.processing_ms,
    }
    if args.layers > 1:
        result["layers"] = [list(layer.ids) for layer in reply.layers]
    return result


_HANDLERS = {"asr": _asr}


def run(args: argparse.Namespace) -> int:
    info = SERVICES[args.service]
    wav = getattr(args, "wav", None)
    if wav is not None and not wav.is_file():
        print(f"solami call: no such file: {wav}", file=sys.stderr)
        return 2
    with sync_channel(info.address()) as channel:
        try:
            result = _HANDLERS[args.service](args, channel)
        except grpc.RpcError as exc:
            print(
                f"solami call {args.service}: {exc.code().name}: {exc.details()}", file=sys.stderr
            )
            return 1
    print(json.dumps(result, ensure_ascii=False))
    return 0
