"""Wiring of the llm service process: settings -> engine -> runtime."""

from __future__ import annotations

from services.llm.engine import LlmEngine
from services.llm.servicer import LlmServicer
from services.llm.settings import INFO, LlmSettings
from solami.server import ServiceDefinition, run_service
from solami.settings import load_settings
from solami.v1 import llm_pb2_grpc

DEFINITION = ServiceDefinition(
    info=INFO,
    add_servicer=llm_pb2_grpc.add_LlmServiceServicer_to_server,
    make_servicer=LlmServicer,
)


def main() -> int:
    settings = load_settings(LlmSettings, INFO.env_prefix)
    return run_service(DEFINITION, settings, LlmEngine(settings))


if __name__ == "__main__":
    raise SystemExit(main())
