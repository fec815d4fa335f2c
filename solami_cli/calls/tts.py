"""Speech out: speak text (or SOLAMI speech units) in a character's voice, list voices."""

from __future__ import annotations

import argparse
import json
import re
import time
from pathlib import Path

import grpc
import numpy as np

from solami import audio
from solami.v1 import common_pb2, tts_pb2, tts_pb2_grpc
from solami_cli.call import CALL_TIMEOUT_S, new_turn

# Units sent per Vocode message (one second of speech).
UNITS_PER_MESSAGE = 50


def add_arguments(parser: argparse.ArgumentParser) -> None:
    operations = parser.add_subparsers(dest="operation", required=True)
    synthesize = operations.add_parser("synthesize", help="text -> WAV in a character's voice")
    synthesize.add_argument("text", help="what the character says")
    _add_voice_arguments(synthesize)
    synthesize.add_argument(
        "--sentences", action="store_true", help="send each sentence as its own text piece"
    )
    vocode = operations.add_parser("vocode", help="SpeechTokenizer units -> WAV (solami method)")
    vocode.add_argument(
        "units", type=Path, help="file with unit ids: the JSON of `asr tokenize`, or plain ids"
    )
    _add_voice_arguments(vocode)
    operations.add_parser("voices", help="list voices and the character -> voice assignment")


def _add_voice_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--character", default="Samantha")
    parser.add_argument("--voice", default="", help="voice preset overriding the character's")
    parser.add_argument("--out", type=Path, default=Path("reply.wav"), help="WAV to write")
    parser.add_argument("--rate", type=int, default=0, help="output Hz (default: native)")


def call(args: argparse.Namespace, channel: grpc.Channel) -> dict:
    stub = tts_pb2_grpc.TtsServiceStub(channel)
    if args.operation == "voices":
        reply = stub.ListVoices(tts_pb2.ListVoicesRequest(), timeout=CALL_TIMEOUT_S)
        return {
            "backend": reply.backend,
            "vocode_available": reply.vocode_available,
            "characters": dict(reply.character_voices),
            "voices": [
                {
                    "name": v.name,
                    "backend": v.backend,
                    "sample_rate_hz": v.sample_rate_hz,
                    "description": v.description,
                }
                for v in reply.voices
            ],
        }
    turn = new_turn()
    config = tts_pb2.SpeechConfig(
        character=args.character, voice=args.voice, sample_rate_hz=args.rate
    )
    if args.operation == "synthesize":
        pieces = re.split(r"(?<=[.!?])\s+", args.text) if args.sentences else [args.text]
        requests = [tts_pb2.SynthesizeRequest(turn=turn, config=config)]
        requests += [
            tts_pb2.SynthesizeRequest(turn=turn, text=tts_pb2.TextPiece(text=piece, index=i))
            for i, piece in enumerate(pieces)
        ]
        requests.append(tts_pb2.SynthesizeRequest(turn=turn, end=common_pb2.StreamEnd()))
        started = time.perf_counter()
        return _collect(stub.Synthesize(iter(requests), timeout=CALL_TIMEOUT_S), args, started)
    ids = _read_units(args.units)
    requests = [tts_pb2.VocodeRequest(turn=turn, config=config)]
    chunks = [ids[i : i + UNITS_PER_MESSAGE] for i in range(0, len(ids), UNITS_PER_MESSAGE)]
    requests += [
        tts_pb2.VocodeRequest(turn=turn, units=tts_pb2.UnitChunk(ids=chunk)) for chunk in chunks
    ]
    requests.append(tts_pb2.VocodeRequest(turn=turn, end=common_pb2.StreamEnd()))
    started = time.perf_counter()
    return _collect(stub.Vocode(iter(requests), timeout=CALL_TIMEOUT_S), args, started)


def _read_units(path: Path) -> list[int]:
    text = path.read_text(encoding="utf-8")
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return [int(token) for token in re.findall(r"\d+", text)]
    return [int(u) for u in (data["units"] if isinstance(data, dict) else data)]


def _collect(events, args: argparse.Namespace, started: float) -> dict:
    rate, first_audio_ms, chunks = 0, None, []
    phonemes, words = [], []
    for event in events:
        kind = event.WhichOneof("event")
        if kind == "header":
            rate = event.header.sample_rate_hz
        elif kind == "audio":
            if first_audio_ms is None:
                first_audio_ms = round((time.perf_counter() - started) * 1000)
            chunks.append(event.audio.data)
        elif kind == "timings":
            phonemes += [(p.phoneme, p.start_ms, p.end_ms) for p in event.timings.phonemes]
            words += [(w.word, w.start_ms, w.end_ms) for w in event.timings.words]
    samples = audio.pcm16_to_float(b"".join(chunks)) if chunks else np.zeros(0, np.float32)
    args.out.write_bytes(audio.encode_wav(samples, rate))
    return {
        "out": str(args.out),
        "sample_rate_hz": rate,
        "duration_s": round(samples.size / rate, 3) if rate else 0.0,
        "first_audio_ms": first_audio_ms,
        "total_ms": round((time.perf_counter() - started) * 1000),
        "chunks": len(chunks),
        "words": [{"word": w, "start_ms": a, "end_ms": b} for w, a, b in words],
        "phonemes": [{"phoneme": p, "start_ms": a, "end_ms": b} for p, a, b in phonemes],
    }
