"""The character's brain: chat with a character, streaming the reply."""

from __future__ import annotations

import argparse
import sys

import grpc

from solami.methods import AGENT_METHODS, LLM_SPEECH, METHOD_ENUMS
from solami.v1 import llm_pb2, llm_pb2_grpc
from solami_cli.call import CALL_TIMEOUT_S, new_turn


def add_arguments(parser: argparse.ArgumentParser) -> None:
    operations = parser.add_subparsers(dest="operation", required=True)
    chat = operations.add_parser("chat", help="one user message -> the character's reply")
    chat.add_argument("text", help="what the user says")
    chat.add_argument("--character", default="Samantha")
    chat.add_argument("--method", default=LLM_SPEECH, choices=AGENT_METHODS)
    chat.add_argument(
        "--motion", default="", help="what the user does (the dlp methods; their caption)"
    )
    operations.add_parser("characters", help="list characters and methods")


def call(args: argparse.Namespace, channel: grpc.Channel) -> dict:
    stub = llm_pb2_grpc.LlmServiceStub(channel)
    if args.operation == "characters":
        reply = stub.ListCharacters(llm_pb2.ListCharactersRequest(), timeout=CALL_TIMEOUT_S)
        return {
            "characters": [c.name for c in reply.characters],
            "methods": [llm_pb2.ConversationMethod.Name(m) for m in reply.methods],
            "engine": reply.engine,
        }
    request = llm_pb2.GenerateRequest(
        turn=new_turn(),
        character=args.character,
        method=METHOD_ENUMS[args.method],
        user=llm_pb2.Message(role=llm_pb2.ROLE_USER, text=args.text, motion_text=args.motion),
    )
    result: dict = {}
    for event in stub.Generate(request, timeout=CALL_TIMEOUT_S):
        kind = event.WhichOneof("event")
        if kind == "text":
            sys.stderr.write(event.text.text)
            sys.stderr.flush()
        elif kind == "end":
            end = event.end
            sys.stderr.write("\n")
            result = {
                "speech": end.reply.speech,
                "motion": end.reply.motion,
                "first_token_ms": end.first_token_ms,
                "total_ms": end.total_ms,
                "prompt_tokens": end.prompt_tokens,
                "completion_tokens": end.completion_tokens,
                "attempts": end.attempts,
            }
    return result
