"""Typed clients of the five services over long-lived channels, with per-stage deadlines.

The relay knows the services only through these clients and the ``solami.v1`` contract: each
client builds its request streams, applies its deadline, maps gRPC errors to ``TurnError``,
cancels abandoned streams and counts its calls. Idempotent calls are retried once by gRPC
itself when the service is UNAVAILABLE (a restart in progress).
"""

from __future__ import annotations

import dataclasses
import json

import grpc

from relay.clients.asr import AsrClient
from relay.clients.face import FaceClient
from relay.clients.llm import LlmClient
from relay.clients.motion import MotionClient
from relay.clients.tts import TtsClient
from relay.metrics import RelayMetrics
from relay.settings import RelaySettings
from solami.client import CLIENT_OPTIONS
from solami.registry import SERVICES
from solami.v1 import (
    asr_pb2_grpc,
    face_pb2_grpc,
    llm_pb2_grpc,
    motion_pb2_grpc,
    tts_pb2_grpc,
)

# Calls that may run twice without harm, retried when the service is UNAVAILABLE. Streams that
# generate (Generate, Synthesize, Vocode, DecodeMotion, Animate) are not: their requests come
# from the turn as it goes.
IDEMPOTENT_RPCS = {
    "asr": ("Transcribe", "Tokenize"),
    "motion": ("EncodeUserMotion", "TextToMotion", "CaptionMotion"),
}
RETRY_POLICY = {
    "maxAttempts": 2,
    "initialBackoff": "0.2s",
    "maxBackoff": "1s",
    "backoffMultiplier": 2,
    "retryableStatusCodes": ["UNAVAILABLE"],
}


def _channel(name: str) -> grpc.aio.Channel:
    info = SERVICES[name]
    methods = [{"service": info.full_name, "method": rpc} for rpc in IDEMPOTENT_RPCS.get(name, ())]
    config = {"methodConfig": [{"name": methods, "retryPolicy": RETRY_POLICY}]} if methods else {}
    options = [*CLIENT_OPTIONS, ("grpc.service_config", json.dumps(config))]
    return grpc.aio.insecure_channel(info.address(), options=options)


@dataclasses.dataclass
class ServiceClients:
    """One typed client per service (gRPC reconnects their channels when a service restarts)."""

    asr: AsrClient
    llm: LlmClient
    tts: TtsClient
    motion: MotionClient
    face: FaceClient
    # Service name -> its channel.
    channels: dict[str, grpc.aio.Channel]

    @classmethod
    def connect(cls, settings: RelaySettings, metrics: RelayMetrics) -> ServiceClients:
        channels = {name: _channel(name) for name in SERVICES}
        return cls(
            asr=AsrClient(
                asr_pb2_grpc.AsrServiceStub(channels["asr"]), settings.asr_deadline_s, metrics
            ),
            llm=LlmClient(
                llm_pb2_grpc.LlmServiceStub(channels["llm"]), settings.llm_deadline_s, metrics
            ),
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
        """Each service channel's connectivity (READY, CONNECTING, TRANSIENT_FAILURE, IDLE);
        an idle channel is asked to connect so the next look sees whether it can."""
        return {
            name: channel.get_state(try_to_connect=True).name
            for name, channel in self.channels.items()
        }

    async def close(self) -> None:
        for channel in self.channels.values():
            await channel.close()
