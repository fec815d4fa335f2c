"""Wiring of the asr service process: settings -> engine -> runtime."""

from __future__ import annotations

from services.asr.engine import AsrEngine
from services.asr.servicer import AsrServicer
from services.asr.settings import INFO, AsrSettings
from solami.server import ServiceDefinition, serve_main
from solami.v1 import asr_pb2_grpc

DEFINITION = ServiceDefinition(
    info=INFO,
    add_servicer=asr_pb2_grpc.add_AsrServiceServicer_to_server,
    make_servicer=AsrServicer,
)


def main() -> int:
    return serve_main(DEFINITION, AsrSettings, AsrEngine)


if __name__ == "__main__":
    raise SystemExit(main())
