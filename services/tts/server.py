"""Wiring of the tts service process: settings -> engine -> runtime."""

from __future__ import annotations

from services.tts.engine import TtsEngine
from services.tts.servicer import TtsServicer
from services.tts.settings import INFO, TtsSettings
from solami.server import ServiceDefinition, serve_main
from solami.v1 import tts_pb2_grpc

DEFINITION = ServiceDefinition(
    info=INFO,
    add_servicer=tts_pb2_grpc.add_TtsServiceServicer_to_server,
    make_servicer=TtsServicer,
)


def main() -> int:
    return serve_main(DEFINITION, TtsSettings, TtsEngine)


if __name__ == "__main__":
    raise SystemExit(main())
