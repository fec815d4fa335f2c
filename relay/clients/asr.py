"""Typed client of the asr service: the user's utterance as text or as speech units."""

from __future__ import annotations

from relay.clients.base import ServiceClient
from solami.v1 import asr_pb2, common_pb2

# SpeechTokenizer layers the solami method feeds the LLM (RVQ-1).
SOLAMI_UNIT_LAYERS = 1


class AsrClient(ServiceClient):
    service = "asr"
    invalid_argument_is_input = True

    async def transcribe(self, turn: common_pb2.TurnContext, wav: bytes) -> str:
        """The transcript of ``wav`` (empty when nothing was said)."""
        with self.call("Transcribe"):
            reply = await self._stub.Transcribe(
                asr_pb2.TranscribeRequest(turn=turn, wav=wav), timeout=self.deadline_s
            )
        return reply.text.strip()

    async def tokenize(self, turn: common_pb2.TurnContext, wav: bytes) -> list[int]:
        """SpeechTokenizer RVQ-1 units of the speech in ``wav`` (50 per second)."""
        with self.call("Tokenize"):
            reply = await self._stub.Tokenize(
                asr_pb2.TokenizeRequest(turn=turn, wav=wav, num_layers=SOLAMI_UNIT_LAYERS),
                timeout=self.deadline_s,
            )
        return list(reply.layers[0].ids) if reply.layers else []
