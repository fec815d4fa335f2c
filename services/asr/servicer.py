"""AsrService: proto <-> domain conversion around the asr engine."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import grpc
from prometheus_client import Counter, Histogram

from services.asr.engine import AsrEngine, Transcript, elapsed_ms
from solami.audio_stream import AudioCollector
from solami.avatar.rates import UNIT_RATE_HZ
from solami.errors import InvalidInput
from solami.metrics import ServiceMetrics
from solami.v1 import asr_pb2, asr_pb2_grpc, common_pb2

# Real-time factor buckets (processing seconds per audio second).
RTF_BUCKETS = (0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0)
# Seconds of new streamed audio after which a partial transcript is produced.
PARTIAL_EVERY_S = 3.0


class AsrMetrics:
    """The asr service's own metrics, beside the runtime's RPC metrics."""

    def __init__(self, metrics: ServiceMetrics, backend: str) -> None:
        self.backend = backend
        self.audio_seconds_total = Counter(
            "solami_asr_audio_seconds_total",
            "Seconds of submitted audio, by operation.",
            ("operation",),
            registry=metrics.registry,
        )
        self.real_time_factor = Histogram(
            "solami_asr_real_time_factor",
            "Processing time divided by speech duration, by operation and backend.",
            ("operation", "backend"),
            buckets=RTF_BUCKETS,
            registry=metrics.registry,
        )

    def observe(self, operation: str, audio_s: float, speech_s: float, started: float) -> None:
        self.audio_seconds_total.labels(operation).inc(audio_s)
        if speech_s > 0:
            rtf = (time.perf_counter() - started) / speech_s
            self.real_time_factor.labels(operation, self.backend).observe(rtf)


def transcript_to_proto(
    transcript: Transcript, turn: common_pb2.TurnContext, backend: str, processing_ms: int
) -> asr_pb2.TranscribeResponse:
    return asr_pb2.TranscribeResponse(
        turn=turn,
        text=transcript.text,
        language=transcript.language,
        language_probability=transcript.language_probability,
        segments=[
            asr_pb2.TranscriptSegment(
                text=s.text.strip(),
                start_ms=round(s.start_s * 1000),
                end_ms=round(s.end_s * 1000),
                avg_logprob=s.avg_logprob,
                no_speech_prob=s.no_speech_prob,
                words=[
                    common_pb2.WordTiming(
                        word=w.text,
                        start_ms=round(w.start_s * 1000),
                        end_ms=round(w.end_s * 1000),
                        probability=w.probability,
                    )
                    for w in s.words
                ],
            )
            for s in transcript.segments
        ],
        audio_duration_s=transcript.audio_duration_s,
        speech_duration_s=transcript.speech_duration_s,
        confidence=transcript.confidence,
        processing_ms=processing_ms,
        backend=backend,
    )


class AsrServicer(asr_pb2_grpc.AsrServiceServicer):
    def __init__(self, engine: AsrEngine, metrics: ServiceMetrics) -> None:
        self._engine = engine
        self._metrics = AsrMetrics(metrics, engine.name)

    async def Transcribe(
        self, request: asr_pb2.TranscribeRequest, context: grpc.aio.ServicerContext
    ) -> asr_pb2.TranscribeResponse:
        started = time.perf_counter()
        samples, rate = await asyncio.to_thread(self._engine.decode, request.wav)
        return await self._transcribe(
            samples, rate, request.turn, request.language, request.word_timestamps, started
        )

    async def _transcribe(self, samples, rate, turn, language, word_timestamps, started):
        transcript = await asyncio.to_thread(
            self._engine.transcribe, samples, rate, language, word_timestamps
        )
        self._metrics.observe(
            "transcribe", transcript.audio_duration_s, transcript.speech_duration_s, started
        )
        return transcript_to_proto(transcript, turn, self._engine.name, elapsed_ms(started))

    async def StreamTranscribe(
        self,
        request_iterator: AsyncIterator[common_pb2.AudioInput],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[asr_pb2.TranscribeEvent]:
        collector = AudioCollector(self._engine.settings.max_audio_s)
        turn = common_pb2.TurnContext()
        next_partial_s = PARTIAL_EVERY_S
        async for message in request_iterator:
            collector.add(message)
            turn = message.turn
            if collector.ended:
                break
            if collector.duration_s >= next_partial_s:
                next_partial_s = collector.duration_s + PARTIAL_EVERY_S
                samples, rate = collector.samples()
                partial = await asyncio.to_thread(self._engine.transcribe, samples, rate)
                for segment in transcript_to_proto(partial, turn, self._engine.name, 0).segments:
                    yield asr_pb2.TranscribeEvent(turn=turn, partial=segment)
        if not collector.ended:
            raise InvalidInput("audio stream closed without an end message")
        started = time.perf_counter()
        samples, rate = await asyncio.to_thread(collector.samples)
        final = await self._transcribe(samples, rate, turn, "", False, started)
        yield asr_pb2.TranscribeEvent(turn=turn, final=final)

    async def Tokenize(
        self, request: asr_pb2.TokenizeRequest, context: grpc.aio.ServicerContext
    ) -> asr_pb2.TokenizeResponse:
        started = time.perf_counter()
        num_layers = request.num_layers or 1
        if not 1 <= num_layers <= 8:
            raise InvalidInput(f"num_layers must be between 1 and 8, got {num_layers}")
        samples, rate = await asyncio.to_thread(self._engine.decode, request.wav)
        units = await asyncio.to_thread(
            self._engine.tokenize, samples, rate, num_layers, not request.skip_vad
        )
        self._metrics.observe("tokenize", len(samples) / rate, units.speech_duration_s, started)
        return asr_pb2.TokenizeResponse(
            turn=request.turn,
            layers=[
                asr_pb2.UnitLayer(index=i, ids=layer.tolist())
                for i, layer in enumerate(units.layers)
            ],
            frame_rate_hz=UNIT_RATE_HZ,
            speech_duration_s=units.speech_duration_s,
            processing_ms=elapsed_ms(started),
        )
