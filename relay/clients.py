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
    channels: tuple[grpc.aio.Channel, ...]

    @classmethod
    def connect(cls) -> ServiceClients:
        channels = {name: aio_channel(info.address()) for name, info in SERVICES.items()}
        return cls(
            asr=asr_pb2_grpc.AsrServiceStub(channels["asr"]),
            llm=llm_pb2_grpc.LlmServiceStub(channels["llm"]),
            tts=tts_pb2_grpc.TtsServiceStub(channels["tts"]),
            motion=motion_pb2_grpc.MotionServiceStub(channels["motion"]),
            face=face_pb2_grpc.FaceServiceStub(channels["face"]),
            channels=tuple(channels.values()),
        )

    async def close(self) -> None:
        for channel in self.channels:
            await channel.close()
