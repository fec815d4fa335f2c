"""Wiring of the motion service process: settings -> engine -> runtime."""

from __future__ import annotations

from services.motion.engine import MotionEngine
from services.motion.servicer import MotionServicer
from services.motion.settings import INFO, MotionSettings
from solami.server import ServiceDefinition, serve_main
from solami.v1 import motion_pb2_grpc

DEFINITION = ServiceDefinition(
    info=INFO,
    add_servicer=motion_pb2_grpc.add_MotionServiceServicer_to_server,
    make_servicer=MotionServicer,
)


def main() -> int:
    return serve_main(DEFINITION, MotionSettings, MotionEngine)


if __name__ == "__main__":
    raise SystemExit(main())
