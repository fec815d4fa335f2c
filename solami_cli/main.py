"""``solami`` entry point: serve, up, status, call."""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from solami.registry import RELAY, SERVICES
from solami.settings import SettingsError
from solami_cli import rig_data

PARTS = {**SERVICES, RELAY.name: RELAY}


def _serve(args: argparse.Namespace) -> int:
    info = PARTS[args.service]
    if not info.is_available():
        print(f"solami: {info.name} is not part of this installation", file=sys.stderr)
        return 2
    if args.rig_data is not None:
        if info is not RELAY:
            print("solami serve: --rig-data only applies to the relay", file=sys.stderr)
            return 2
        rig_data.set_rig_data(os.environ, args.rig_data)
    module = importlib.import_module(info.module)
    try:
        return int(module.main())
    except SettingsError as exc:
        print(f"solami serve {info.name}: bad setting: {exc}", file=sys.stderr)
        return 2


def _up(args: argparse.Namespace) -> int:
    from solami_cli import up

    return up.run(args)


def _status(args: argparse.Namespace) -> int:
    from solami_cli import status

    return status.run(args)


def _call(args: argparse.Namespace) -> int:
    from solami_cli import call

    return call.run(args)


def _headset(args: argparse.Namespace) -> int:
    from solami_cli import simulator

    return simulator.main(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="solami", description="SOLAMI serving stack")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run one service in the foreground")
    serve.add_argument("service", choices=sorted(PARTS))
    rig_data.add_argument(serve, relay_only=True)
    serve.set_defaults(func=_serve)

    from solami_cli import up as up_command

    up = sub.add_parser("up", help="start Redis (if needed), every service and the relay")
    up_command.add_arguments(up)
    up.set_defaults(func=_up)

    status = sub.add_parser("status", help="health of each service, one line each")
    status.add_argument("--timeout", type=float, default=1.0, help="seconds per health check")
    status.set_defaults(func=_status)

    headset = sub.add_parser("headset", help="simulate a Quest headset for one turn")
    from solami_cli import simulator

    simulator.add_arguments(headset)
    headset.set_defaults(func=_headset)

    sub.add_parser(
        "motion",
        help="`solami motion train DATA --out DIR`: train the motion VQ-VAEs; "
        "`solami motion library build DATA --out LIB`: build a retrieval library",
    )

    call = sub.add_parser("call", help="call a service's RPC from the command line")
    from solami_cli import call as call_module

    call_module.add_arguments(call)
    call.set_defaults(func=_call)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:2] == ["motion", "train"]:
        from services.motion import train

        return int(train.main(argv[2:]))
    if argv[:3] == ["motion", "library", "build"]:
        from services.motion import library_build

        return int(library_build.main(argv[3:]))
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
