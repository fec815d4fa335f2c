"""Typed client of the tts service: text or speech units -> audio in a character's voice."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator

import numpy as np

from relay.clients.base import ServiceClient
from relay.errors import TurnError
from solami import audio
from solami.v1 import common_pb2, tts_pb2


@dataclasses.dataclass(frozen=True)
class Speech:
    """Audio (mono float32) and, for text, the phoneme timings the face service can use."""

    samples: np.ndarray
    rate_hz: int
    timings: tuple[common_pb2.PhonemeTiming, ...] = ()

    @property
    def duration_s(self) -> float:
        return len(self.samples) / self.rate_hz


class TtsClient(ServiceClient):
    service = "tts"

    async def synthesize(
        self, turn: common_pb2.TurnContext, character: str, text: str
    ) -> AsyncIterator[Speech]:
        """``text`` in ``character``'s voice, as audio chunks in order as they are made (the
        first is empty and gives the rate; a chunk may carry only timings)."""

        def requests():
            config = tts_pb2.SpeechConfig(character=character)
            yield tts_pb2.SynthesizeRequest(turn=turn, config=config)
            yield tts_pb2.SynthesizeRequest(turn=turn, text=tts_pb2.TextPiece(text=text))
            yield tts_pb2.SynthesizeRequest(turn=turn, end=common_pb2.StreamEnd())

        call = self._stub.Synthesize(requests(), timeout=self.deadline_s)
        async for chunk in self._audio("Synthesize", call):
            yield chunk

    async def vocode(
        self,
        turn: common_pb2.TurnContext,
        character: str,
        units: AsyncIterator[list[int]],
        deadline_s: float | None = None,
    ) -> AsyncIterator[Speech]:
        """SpeechTokenizer units voiced in ``character``'s cloned voice in ONE Vocode stream:
        each chunk ``units`` yields is sent as it comes (the service carries the voice and the
        left context from chunk to chunk, so the audio has no seams), and the audio comes back
        chunk by chunk (the first is empty and gives the rate). The stream lasts as long as
        ``units`` does, hence its own ``deadline_s``; closing the iterator cancels it."""

        async def requests():
            config = tts_pb2.SpeechConfig(character=character)
            yield tts_pb2.VocodeRequest(turn=turn, config=config)
            async for ids in units:
                yield tts_pb2.VocodeRequest(turn=turn, units=tts_pb2.UnitChunk(ids=ids))
            yield tts_pb2.VocodeRequest(turn=turn, end=common_pb2.StreamEnd())

        call = self._stub.Vocode(requests(), timeout=deadline_s or self.deadline_s)
        async for chunk in self._audio("Vocode", call):
            yield chunk

    async def _audio(self, rpc: str, call) -> AsyncIterator[Speech]:
        rate = 0
        async for event in self.stream(rpc, call):
            kind = event.WhichOneof("event")
            if kind == "header":
                rate = event.header.sample_rate_hz
                yield Speech(np.zeros(0, np.float32), rate)
            elif kind in ("audio", "timings") and not rate:
                raise TurnError(self.service, f"{rpc} sent {kind} before its header")
            elif kind == "audio":
                yield Speech(audio.pcm16_to_float(event.audio.data), rate)
            elif kind == "timings":
                yield Speech(np.zeros(0, np.float32), rate, tuple(event.timings.phonemes))
        if not rate:
            raise TurnError(self.service, f"the {rpc} stream had no header")


async def whole(chunks: AsyncIterator[Speech]) -> Speech:
    """The chunks of one synthesis joined into one clip."""
    parts = [chunk async for chunk in chunks]
    joined = np.concatenate([p.samples for p in parts])
    return Speech(joined, parts[0].rate_hz, tuple(t for p in parts for t in p.timings))
