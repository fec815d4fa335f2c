"""The services that make up the stack: names, gRPC full names, ports and where they live."""

from __future__ import annotations

import dataclasses
import importlib.util
import os
from collections.abc import Mapping


@dataclasses.dataclass(frozen=True)
class ServiceInfo:
    """Fixed facts about one part of the stack."""

    # Short name used on the command line and in env var prefixes ("asr").
    name: str
    # Fully qualified gRPC service name ("solami.v1.AsrService"); empty for the relay.
    full_name: str
    # Default gRPC port (the relay: its WebSocket port).
    port: int
    # Default Prometheus metrics port.
    metrics_port: int
    # Module whose ``main(argv)`` serves this part.
    module: str

    @property
    def env_prefix(self) -> str:
        """Prefix of this part's settings variables ("SOLAMI_ASR_")."""
        return f"SOLAMI_{self.name.upper()}_"

    def address(self, environ: Mapping[str, str] | None = None) -> str:
        """Where clients reach the service: ``SOLAMI_<NAME>_ADDR``, else loopback + its port."""
        env = os.environ if environ is None else environ
        addr = env.get(f"{self.env_prefix}ADDR")
        if addr:
            return addr
        port = env.get(f"{self.env_prefix}PORT") or str(self.port)
        return f"127.0.0.1:{port}"

    def is_available(self) -> bool:
        """True when this checkout contains the part's implementation."""
        try:
            return importlib.util.find_spec(self.module) is not None
        except ModuleNotFoundError:
            return False


SERVICES: dict[str, ServiceInfo] = {
    info.name: info
    for info in (
        ServiceInfo("asr", "solami.v1.AsrService", 50051, 9101, "services.asr.server"),
        ServiceInfo("llm", "solami.v1.LlmService", 50052, 9102, "services.llm.server"),
        ServiceInfo("tts", "solami.v1.TtsService", 50053, 9103, "services.tts.server"),
        ServiceInfo("motion", "solami.v1.MotionService", 50054, 9104, "services.motion.server"),
        ServiceInfo("face", "solami.v1.FaceService", 50055, 9105, "services.face.server"),
    )
}

RELAY = ServiceInfo("relay", "", 8099, 9100, "relay.server")

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


def redis_url(environ: Mapping[str, str] | None = None) -> str:
    """The Redis every part shares (``SOLAMI_REDIS_URL``)."""
    env = os.environ if environ is None else environ
    return env.get("SOLAMI_REDIS_URL") or DEFAULT_REDIS_URL
