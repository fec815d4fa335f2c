"""TtsService: proto <-> domain conversion around the tts engine.

A request stream starts with its config; each text piece (or unit chunk) that follows is
rendered as soon as it arrives, its audio streaming back before the next one is read. ``end``,
or the client closing its side of the stream, ends the input.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
from prometheus_client import Counter, Histogram

from services.tts import speech
from services.tts.engine import TtsEngine
from services.tts.speech import VOCODE_RATE_HZ
from services.tts.voices import CHARACTER_VOICES, VOICES
from solami.audio import float_to_pcm16
from solami.errors import InvalidInput
from solami.metrics import ServiceMetrics
from solami.streaming import iterate_in_thread
from solami.v1 import common_pb2, tts_pb2, tts_pb2_grpc

# Time to first audio buckets, in seconds.
FIRST_AUDIO_BUCKETS_S = (0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0, 2.0, 5.0)
# Real-time factor buckets (rendering time / audio duration): eSpeak ~0.003, Piper ~0.06 on
# two cores, full-size Vocode on CPU above 1.
RTF_BUCKETS = (0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 20.0)


class TtsMetrics:
    """The tts service's own metrics, beside the runtime's RPC metrics."""

    def __init__(self, metrics: ServiceMetrics, backend: str) -> None:
        self.backend = backend
        self.first_audio_seconds = Histogram(
            "solami_tts_time_to_first_audio_seconds",
            "Time from the first text piece (or unit chunk) to the first audio chunk.",
            ("method", "backend"),
            buckets=FIRST_AUDIO_BUCKETS_S,
            registry=metrics.registry,
        )
        self.audio_seconds_total = Counter(
            "solami_tts_audio_seconds_total",
            "Seconds of audio produced, by method.",
            ("method",),
            registry=metrics.registry,
        )
        self.real_time_factor = Histogram(
            "solami_tts_real_time_factor",
            "Rendering time of a stream divided by the audio it produced.",
            ("method", "backend"),
            buckets=RTF_BUCKETS,
            registry=metrics.registry,
        )


def event_to_proto(event: speech.SpeechEvent, turn: common_pb2.TurnContext) -> tts_pb2.SpeechEvent:
    if isinstance(event, speech.Audio):
        chunk = common_pb2.AudioChunk(
            data=float_to_pcm16(event.samples),
            start_ms=round(event.start_s * 1000),
            duration_ms=round(event.duration_s * 1000),
            start_sample=event.start_sample,
        )
        return tts_pb2.SpeechEvent(turn=turn, audio=chunk)
    if isinstance(event, speech.Timings):
        timings = common_pb2.SpeechTimings(
            phonemes=[
                common_pb2.PhonemeTiming(
                    phoneme=p.symbol, start_ms=_ms(p.start_s), end_ms=_ms(p.end_s)
                )
                for p in event.phonemes
            ],
            words=[
                common_pb2.WordTiming(
                    word=w.text, start_ms=_ms(w.start_s), end_ms=_ms(w.end_s), probability=1.0
                )
                for w in event.words
            ],
        )
        return tts_pb2.SpeechEvent(turn=turn, timings=timings)
    if isinstance(event, speech.Header):
        header = common_pb2.AudioHeader(
            sample_rate_hz=event.sample_rate_hz,
            channels=1,
            encoding=common_pb2.AUDIO_ENCODING_PCM16,
        )
        return tts_pb2.SpeechEvent(turn=turn, header=header)
    end = common_pb2.AudioEnd(total_ms=_ms(event.total_s), total_samples=event.total_samples)
    return tts_pb2.SpeechEvent(turn=turn, end=end)


def _ms(seconds: float) -> int:
    return max(0, round(seconds * 1000))


async def _config(requests: AsyncIterator[Any]) -> tuple[tts_pb2.SpeechConfig, Any]:
    """The config opening a request stream, and the stream's turn."""
    first = await anext(requests, None)
    if first is None or first.WhichOneof("event") != "config":
        raise InvalidInput("the first message of the stream must be the config")
    return first.config, first.turn


async def _items(
    requests: AsyncIterator[Any], field: str, payload: Callable[[Any], Any]
) -> AsyncIterator[Any]:
    """The stream's ``field`` items until ``end`` or the client closes its side."""
    async for message in requests:
        kind = message.WhichOneof("event")
        if kind == "end":
            return
        if kind != field:
            raise InvalidInput(f"unexpected {kind or 'empty'} message: send {field} or end")
        yield payload(message)


class TtsServicer(tts_pb2_grpc.TtsServiceServicer):
    def __init__(self, engine: TtsEngine, metrics: ServiceMetrics) -> None:
        self._engine = engine
        self._metrics = TtsMetrics(metrics, engine.name)

    async def Synthesize(
        self, request_iterator: AsyncIterator[tts_pb2.SynthesizeRequest], context: Any
    ) -> AsyncIterator[tts_pb2.SpeechEvent]:
        config, turn = await _config(request_iterator)
        options = self._engine.options(
            config.character, config.voice, config.sample_rate_hz, config.start_ms
        )
        session = self._engine.open_speech(options)
        yield event_to_proto(session.header(), turn)
        timer = _StreamTimer(self._metrics, "synthesize")
        async for piece in _items(request_iterator, "text", lambda m: m.text.text):
            timer.received()
            speaking = iterate_in_thread(lambda cancel, piece=piece: session.speak(piece, cancel))
            async for event in timer.rendering(speaking):
                yield event_to_proto(event, turn)
        for event in session.finish():
            timer.sent(event)
            yield event_to_proto(event, turn)

    async def Vocode(
        self, request_iterator: AsyncIterator[tts_pb2.VocodeRequest], context: Any
    ) -> AsyncIterator[tts_pb2.SpeechEvent]:
        config, turn = await _config(request_iterator)
        options = self._engine.options(
            config.character, config.voice, config.sample_rate_hz, config.start_ms, vocode=True
        )
        # The session picks the character's prompt clip (one per session, kept across turns).
        stream = await asyncio.to_thread(self._engine.open_vocode, options, turn.session_id)
        yield event_to_proto(stream.header(), turn)
        timer = _StreamTimer(self._metrics, "vocode")
        async for ids in _items(request_iterator, "units", lambda m: list(m.units.ids)):
            timer.received()
            for event in await timer.timed(asyncio.to_thread(stream.add, ids)):
                timer.sent(event)
                yield event_to_proto(event, turn)
        for event in await timer.timed(asyncio.to_thread(stream.finish)):
            timer.sent(event)
            yield event_to_proto(event, turn)

    async def ListVoices(
        self, request: tts_pb2.ListVoicesRequest, context: grpc.aio.ServicerContext
    ) -> tts_pb2.ListVoicesResponse:
        backends = [(self._engine.backend.name, self._engine.backend.sample_rate_hz)]
        if self._engine.vocoder is not None:
            backends.append(("soundstorm", VOCODE_RATE_HZ))
        return tts_pb2.ListVoicesResponse(
            voices=[
                tts_pb2.VoiceInfo(
                    name=voice.name,
                    backend=backend,
                    language=voice.language,
                    sample_rate_hz=rate,
                    description=voice.description,
                )
                for backend, rate in backends
                for voice in VOICES.values()
            ],
            character_voices=CHARACTER_VOICES,
            backend=self._engine.name,
            vocode_available=self._engine.vocoder is not None,
        )


class _StreamTimer:
    """Observes time to first audio (from the first input item), the audio produced and the
    real-time factor (time spent rendering, not waiting for input, over that audio)."""

    def __init__(self, metrics: TtsMetrics, method: str) -> None:
        self._metrics = metrics
        self._method = method
        self._first_input: float | None = None
        self._done = False
        self._busy_s = 0.0

    async def timed(self, work):
        """Awaits ``work`` (rendering), counting its time as busy."""
        started = time.perf_counter()
        try:
            return await work
        finally:
            self._busy_s += time.perf_counter() - started

    async def rendering(self, events: AsyncIterator[speech.SpeechEvent]):
        """Passes ``events`` on; the time until each arrives counts as busy (the time the
        consumer takes between them does not)."""
        started = time.perf_counter()
        async for event in events:
            self._busy_s += time.perf_counter() - started
            self.sent(event)
            yield event
            started = time.perf_counter()
        self._busy_s += time.perf_counter() - started

    def received(self) -> None:
        if self._first_input is None:
            self._first_input = time.perf_counter()

    def sent(self, event: speech.SpeechEvent) -> None:
        if isinstance(event, speech.Audio) and not self._done and self._first_input is not None:
            self._done = True
            waited = time.perf_counter() - self._first_input
            histogram = self._metrics.first_audio_seconds
            histogram.labels(self._method, self._metrics.backend).observe(waited)
        elif isinstance(event, speech.End):
            self._metrics.audio_seconds_total.labels(self._method).inc(event.total_s)
            if event.total_s > 0:
                rtf = self._metrics.real_time_factor.labels(self._method, self._metrics.backend)
                rtf.observe(self._busy_s / event.total_s)
