"""Wiring of the motion service process: settings -> engine -> runtime."""

from __future__ import annotations

from services.motion.engine import MotionEngine
from services.motion.servicer import MotionServicer
from services.motion.settings import INFO, MotionSettings
from solami.server import ServiceDefinition, run_service
from solami.settings import load_settings
from solami.v1 import motion_pb2_grpc

DEFINITION = ServiceDefinition(
    info=INFO,
    add_servicer=motion_pb2_grpc.add_MotionServiceServicer_to_server,
    make_servicer=MotionServicer,
)


def main() -> int:
    settings = load_settings(MotionSettings, INFO.env_prefix)
    return run_service(DEFINITION, settings, MotionEngine(settings))


if __name__ == "__main__":
    raise SystemExit(main())
