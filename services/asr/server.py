"""Wiring of the asr service process: settings -> engine -> runtime."""

from __future__ import annotations

from services.asr.engine import AsrEngine
from services.asr.servicer import AsrServicer
from services.asr.settings import INFO, AsrSettings
from solami.server import ServiceDefinition, run_service
from solami.settings import load_settings
from solami.v1 import asr_pb2_grpc

DEFINITION = ServiceDefinition(
    info=INFO,
    add_servicer=asr_pb2_grpc.add_AsrServiceServicer_to_server,
    make_servicer=AsrServicer,
)


def main() -> int:
    settings = load_settings(AsrSettings, INFO.env_prefix)
    return run_service(DEFINITION, settings, AsrEngine(settings))


if __name__ == "__main__":
    raise SystemExit(main())
