"""Typed clients of the five services over long-lived channels, with per-stage deadlines.

The relay knows the services only through these clients and the ``solami.v1`` contract: each
client builds its request streams, applies its deadline, maps gRPC errors to ``TurnError``,
cancels abandoned streams and counts its calls. Each service's calls are spread over its
replicas and idempotent calls retried once by gRPC itself when the service is UNAVAILABLE (a
restart in progress); the llm's turns stay on their session's replica (``relay.clients.routing``).
"""

from __future__ import annotations

import dataclasses

import grpc

from relay.clients.asr import AsrClient
from relay.clients.face import FaceClient
from relay.clients.llm import LlmClient
from relay.clients.motion import MotionClient
from relay.clients.routing import LlmReplicas, channel_for
from relay.clients.tts import TtsClient
from relay.metrics import RelayMetrics
from relay.settings import RelaySettings
from solami.registry import SERVICES
from solami.v1 import (
    asr_pb2_grpc,
    face_pb2_grpc,
    llm_pb2_grpc,
    motion_pb2_grpc,
    tts_pb2_grpc,
)


@dataclasses.dataclass
class ServiceClients:
    """One typed client per service (gRPC reconnects their channels when a service restarts)."""

    asr: AsrClient
    llm: LlmClient
    tts: TtsClient
    motion: MotionClient
    face: FaceClient
    # Service name -> its channel over all its replicas (the llm's is absent with affinity).
    channels: dict[str, grpc.aio.Channel]

    @classmethod
    def connect(cls, settings: RelaySettings, metrics: RelayMetrics) -> ServiceClients:
        affinity = settings.llm_affinity
        channels = {
            name: channel_for(info)
            for name, info in SERVICES.items()
            if not (name == "llm" and affinity)
        }
        replicas = LlmReplicas(SERVICES["llm"], llm_pb2_grpc.LlmServiceStub) if affinity else None
        llm_stub = None if affinity else llm_pb2_grpc.LlmServiceStub(channels["llm"])
        return cls(
            asr=AsrClient(
                asr_pb2_grpc.AsrServiceStub(channels["asr"]), settings.asr_deadline_s, metrics
            ),
            llm=LlmClient(llm_stub, settings.llm_deadline_s, metrics, replicas),
            tts=TtsClient(
                tts_pb2_grpc.TtsServiceStub(channels["tts"]), settings.tts_deadline_s, metrics
            ),
            motion=MotionClient(
                motion_pb2_grpc.MotionServiceStub(channels["motion"]),
                settings.motion_deadline_s,
                metrics,
            ),
            face=FaceClient(
                face_pb2_grpc.FaceServiceStub(channels["face"]), settings.face_deadline_s, metrics
            ),
            channels=channels,
        )

    def states(self) -> dict[str, str]:
        """Each service's connectivity (READY, CONNECTING, TRANSIENT_FAILURE, IDLE: READY when
        one of its replicas is); an idle channel is asked to connect so the next look sees
        whether it can."""
        states = {
            name: channel.get_state(try_to_connect=True).name
            for name, channel in self.channels.items()
        }
        if self.llm.replicas is not None:
            states["llm"] = self.llm.replicas.state()
        return {name: states[name] for name in SERVICES}

    async def close(self) -> None:
        for channel in self.channels.values():
            await channel.close()
        if self.llm.replicas is not None:
            await self.llm.replicas.close()
