"""Wiring of the llm service process: settings -> engine -> runtime."""

from __future__ import annotations

from services.llm.engine import LlmEngine
from services.llm.servicer import LlmServicer
from services.llm.settings import INFO, LlmSettings
from solami.server import ServiceDefinition, serve_main
from solami.v1 import llm_pb2_grpc

DEFINITION = ServiceDefinition(
    info=INFO,
    add_servicer=llm_pb2_grpc.add_LlmServiceServicer_to_server,
    make_servicer=LlmServicer,
)


def main() -> int:
    return serve_main(DEFINITION, LlmSettings, LlmEngine)


if __name__ == "__main__":
    raise SystemExit(main())
