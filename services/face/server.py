"""Wiring of the face service process: settings -> engine -> runtime."""

from __future__ import annotations

from services.face.engine import FaceEngine
from services.face.servicer import FaceServicer
from services.face.settings import INFO, FaceSettings
from solami.server import ServiceDefinition, serve_main
from solami.v1 import face_pb2_grpc

DEFINITION = ServiceDefinition(
    info=INFO,
    add_servicer=face_pb2_grpc.add_FaceServiceServicer_to_server,
    make_servicer=FaceServicer,
)


def main() -> int:
    return serve_main(DEFINITION, FaceSettings, FaceEngine)


if __name__ == "__main__":
    raise SystemExit(main())
