"""``solami call <service> <operation> ...``: one RPC from the command line, JSON out.

Each service's operations come from ``solami_cli/calls/<name>.py``, which defines
``add_arguments(parser)`` and ``call(args, channel) -> dict``. A failed call prints the
service's status and message to stderr and exits non-zero.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import uuid
from pathlib import Path

import grpc

from solami.client import sync_channel
from solami.registry import SERVICES
from solami.v1 import common_pb2

# Seconds a CLI call may take.
CALL_TIMEOUT_S = 120.0


def _cli_module(name: str):
    return importlib.import_module(f"solami_cli.calls.{name}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    services = parser.add_subparsers(dest="service", required=True)
    for name in SERVICES:
        module = _cli_module(name)
        module.add_arguments(services.add_parser(name, help=module.__doc__.splitlines()[0]))


def new_turn() -> common_pb2.TurnContext:
    """A turn id for one CLI call."""
    return common_pb2.TurnContext(session_id="cli", turn_id=uuid.uuid4().hex[:12])


def run(args: argparse.Namespace) -> int:
    for name in ("wav", "clip"):
        path = getattr(args, name, None)
        if isinstance(path, Path) and not path.is_file():
            print(f"solami call: no such file: {path}", file=sys.stderr)
            return 2
    module = _cli_module(args.service)
    with sync_channel(SERVICES[args.service].address()) as channel:
        try:
            result = module.call(args, channel)
        except grpc.RpcError as exc:
            print(
                f"solami call {args.service}: {exc.code().name}: {exc.details()}", file=sys.stderr
            )
            return 1
    print(json.dumps(result, ensure_ascii=False))
    return 0
