"""Speech in: transcribe or tokenize a WAV file."""

from __future__ import annotations

import argparse
from pathlib import Path

import grpc
from google.protobuf.json_format import MessageToDict

from solami.v1 import asr_pb2, asr_pb2_grpc
from solami_cli.call import CALL_TIMEOUT_S, new_turn


def add_arguments(parser: argparse.ArgumentParser) -> None:
    operations = parser.add_subparsers(dest="operation", required=True)
    transcribe = operations.add_parser("transcribe", help="WAV -> text")
    transcribe.add_argument("wav", type=Path)
    transcribe.add_argument("--language", default="", help="ISO 639-1 hint (default: service's)")
    transcribe.add_argument("--words", action="store_true", help="include word timings")
    tokenize = operations.add_parser("tokenize", help="WAV -> SpeechTokenizer units")
    tokenize.add_argument("wav", type=Path)
    tokenize.add_argument("--layers", type=int, default=1, help="RVQ layers to return (1-8)")


def call(args: argparse.Namespace, channel: grpc.Channel) -> dict:
    stub = asr_pb2_grpc.AsrServiceStub(channel)
    wav = args.wav.read_bytes()
    if args.operation == "transcribe":
        reply = stub.Transcribe(
            asr_pb2.TranscribeRequest(
                turn=new_turn(), wav=wav, language=args.language, word_timestamps=args.words
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
        asr_pb2.TokenizeRequest(turn=new_turn(), wav=wav, num_layers=args.layers),
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
