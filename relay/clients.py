"""gRPC clients of the five services, one channel each, with per-stage deadlines."""

from __future__ import annotations

import dataclasses

import grpc

from solami.client import aio_channel
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
    """Stubs over long-lived channels (reconnected by gRPC when a service restarts)."""

    asr: asr_pb2_grpc.AsrServiceStub
    llm: llm_pb2_grpc.LlmServiceStub
    tts: tts_pb2_grpc.TtsServiceStub
    motion: motion_pb2_grpc.MotionServiceStub
    face: face_pb2_grpc.FaceServiceStub
    # Service name -> its channel.
    channels: dict[str, grpc.aio.Channel]

    @classmethod
    def connect(cls) -> ServiceClients:
        channels = {name: aio_channel(info.address()) for name, info in SERVICES.items()}
        return cls(
            asr=asr_pb2_grpc.AsrServiceStub(channels["asr"]),
            llm=llm_pb2_grpc.LlmServiceStub(channels["llm"]),
            tts=tts_pb2_grpc.TtsServiceStub(channels["tts"]),
            motion=motion_pb2_grpc.MotionServiceStub(channels["motion"]),
            face=face_pb2_grpc.FaceServiceStub(channels["face"]),
            channels=channels,
        )

    def states(self) -> dict[str, str]:
        """Each service channel's connectivity (READY, CONNECTING, TRANSIENT_FAILURE, IDLE);
        an idle channel is asked to connect so the next look sees whether it can."""
        return {
            name: channel.get_state(try_to_connect=True).name
            for name, channel in self.channels.items()
        }

    async def close(self) -> None:
        for channel in self.channels.values():
            await channel.close()
