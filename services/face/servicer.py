"""FaceService: proto <-> domain conversion around the face engine."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator

import grpc
import numpy as np
from prometheus_client import Counter, Histogram

from services.face.engine import FaceEngine, FaceStream
from solami import audio
from solami.avatar.face import CHANNELS
from solami.avatar.rates import FPS
from solami.errors import InvalidInput
from solami.metrics import ServiceMetrics
from solami.speech import Phoneme
from solami.v1 import common_pb2, face_pb2, face_pb2_grpc

# Real-time factor buckets (processing seconds per audio second).
RTF_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)
# Time-to-first-frame buckets, in seconds.
FIRST_FRAME_BUCKETS_S = (0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
_BYTES_PER_SAMPLE = {common_pb2.AUDIO_ENCODING_PCM16: 2, common_pb2.AUDIO_ENCODING_FLOAT32: 4}


class FaceMetrics:
    """The face service's own metrics, beside the runtime's RPC metrics."""

    def __init__(self, metrics: ServiceMetrics) -> None:
        def labelled(kind, name: str, doc: str, **kwargs):
            return kind(name, doc, ("backend",), registry=metrics.registry, **kwargs)

        self.audio_seconds_total = labelled(
            Counter, "solami_face_audio_seconds_total", "Seconds of animated audio, by backend."
        )
        self.frames_total = labelled(
            Counter, "solami_face_frames_total", "Face frames sent, by backend."
        )
        self.real_time_factor = labelled(
            Histogram,
            "solami_face_real_time_factor",
            "Engine time divided by audio duration, by backend.",
            buckets=RTF_BUCKETS,
        )
        self.first_frame_seconds = labelled(
            Histogram,
            "solami_face_first_frame_seconds",
            "Time from the first audio chunk to the first frame, by backend.",
            buckets=FIRST_FRAME_BUCKETS_S,
        )


def check_header(header: common_pb2.AudioHeader) -> None:
    """Raises InvalidInput for an audio header the service cannot decode."""
    if header.encoding == common_pb2.AUDIO_ENCODING_UNSPECIFIED:
        raise InvalidInput("audio header must set encoding (PCM16, FLOAT32 or WAV)")
    if header.encoding == common_pb2.AUDIO_ENCODING_WAV:
        return
    if not audio.MIN_SAMPLE_RATE_HZ <= header.sample_rate_hz <= audio.MAX_SAMPLE_RATE_HZ:
        raise InvalidInput(
            f"sample_rate_hz {header.sample_rate_hz} is not supported: use "
            f"{audio.MIN_SAMPLE_RATE_HZ}-{audio.MAX_SAMPLE_RATE_HZ} Hz"
        )
    if header.channels not in (1, 2):
        raise InvalidInput(f"channels must be 1 or 2, got {header.channels}")


class ChunkDecoder:
    """Raw PCM16/FLOAT32 chunk bytes -> mono float samples. A sample frame may straddle two
    chunks; its first bytes wait for the rest."""

    def __init__(self, header: common_pb2.AudioHeader) -> None:
        self._float = header.encoding == common_pb2.AUDIO_ENCODING_FLOAT32
        self._channels = header.channels
        self._frame_bytes = _BYTES_PER_SAMPLE[header.encoding] * header.channels
        self._pending = b""

    def decode(self, data: bytes) -> np.ndarray:
        data = self._pending + data
        whole = len(data) - len(data) % self._frame_bytes
        data, self._pending = data[:whole], data[whole:]
        if not self._float:
            return audio.pcm16_to_float(data, self._channels)
        samples = np.frombuffer(data, dtype="<f4").reshape(-1, self._channels).mean(axis=1)
        return audio.check_samples(samples)

    def close(self) -> None:
        if self._pending:
            raise InvalidInput("audio does not hold whole sample frames")


def phonemes_from_proto(timings: common_pb2.SpeechTimings) -> list[Phoneme]:
    return [Phoneme(p.phoneme, p.start_ms / 1000, p.end_ms / 1000) for p in timings.phonemes]


class _Call:
    """One Animate stream: audio in as it arrives (raw PCM) or at the end (a WAV file)."""

    def __init__(self, engine: FaceEngine, first: face_pb2.AnimateRequest) -> None:
        if first is None or first.WhichOneof("event") != "config":
            raise InvalidInput("Animate must start with a config message")
        self.turn, self.config = first.turn, first.config
        check_header(self.config.audio)
        self.backend = engine.backend_name(self.config.backend)
        self.wav = self.config.audio.encoding == common_pb2.AUDIO_ENCODING_WAV
        self._engine = engine
        self.stream: FaceStream | None = None
        self.decoder: ChunkDecoder | None = None
        if not self.wav:
            self.stream = self.open(self.config.audio.sample_rate_hz)
            self.decoder = ChunkDecoder(self.config.audio)
        self.wav_parts: list[bytes] = []
        self.phonemes: list[Phoneme] = []
        self.first_audio_at: float | None = None
        self.busy_s = 0.0

    def open(self, rate_hz: int) -> FaceStream:
        return self._engine.open(rate_hz, self.backend, self.config.start_frame)

    def add_timings(self, timings: common_pb2.SpeechTimings) -> None:
        phonemes = phonemes_from_proto(timings)
        if self.stream is None:
            self.phonemes += phonemes
        else:
            self.stream.add_phonemes(phonemes)

    async def run(self, fn, *args) -> np.ndarray:
        """Runs engine work off the event loop and accounts its time."""
        started = time.perf_counter()
        self.first_audio_at = self.first_audio_at or started
        try:
            return await asyncio.to_thread(fn, *args)
        finally:
            self.busy_s += time.perf_counter() - started

    async def push(self, data: bytes) -> np.ndarray:
        if self.wav:
            self.wav_parts.append(data)
            return np.zeros((0, len(CHANNELS)), dtype=np.float32)
        return await self.run(self.stream.push, self.decoder.decode(data))

    async def finish(self) -> list[np.ndarray]:
        if not self.wav:
            self.decoder.close()
            return [await self.run(self.stream.finish)]
        samples, rate = await self.run(self._engine.decode, b"".join(self.wav_parts))
        self.stream = self.open(rate)
        self.stream.add_phonemes(self.phonemes)
        return [await self.run(self.stream.push, samples), await self.run(self.stream.finish)]


class FaceServicer(face_pb2_grpc.FaceServiceServicer):
    def __init__(self, engine: FaceEngine, metrics: ServiceMetrics) -> None:
        self._engine = engine
        self._metrics = FaceMetrics(metrics)
        self._block = engine.settings.frames_per_block

    async def Animate(
        self,
        request_iterator: AsyncIterator[face_pb2.AnimateRequest],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[face_pb2.FaceEvent]:
        messages = aiter(request_iterator)
        call = _Call(self._engine, await anext(messages, None))
        header = face_pb2.FaceHeader(fps=FPS, channel_names=CHANNELS, backend=call.backend)
        yield face_pb2.FaceEvent(turn=call.turn, header=header)
        async for message in messages:
            kind = message.WhichOneof("event")
            if kind == "end":
                break
            if kind == "timings":
                call.add_timings(message.timings)
            elif kind == "audio":
                for event in self._events(call, await call.push(message.audio.data)):
                    yield event
            else:
                raise InvalidInput("Animate takes one config message, then audio, timings, end")
        else:
            raise InvalidInput("Animate stream closed without an end message")
        for frames in await call.finish():
            for event in self._events(call, frames):
                yield event
        stream = call.stream
        self._observe(stream, call.busy_s)
        end = face_pb2.FaceEnd(
            total_frames=stream.frames_sent,
            audio_ms=round(stream.duration_s * 1000),
            processing_ms=round(call.busy_s * 1000),
        )
        yield face_pb2.FaceEvent(turn=call.turn, end=end)

    def _events(self, call: _Call, frames: np.ndarray) -> Iterator[face_pb2.FaceEvent]:
        """FaceFrames events for ``frames``, the newest frames of the call's stream."""
        if not len(frames):
            return
        stream = call.stream
        if stream.frames_sent == len(frames):
            waited = time.perf_counter() - call.first_audio_at
            self._metrics.first_frame_seconds.labels(stream.backend).observe(waited)
        first = call.config.start_frame + stream.frames_sent - len(frames)
        for offset in range(0, len(frames), self._block):
            block = frames[offset : offset + self._block]
            index = first + offset
            yield face_pb2.FaceEvent(
                turn=call.turn,
                frames=face_pb2.FaceFrames(
                    start_frame=index,
                    start_ms=round(index * 1000 / FPS),
                    n_frames=len(block),
                    weights=block.ravel().tolist(),
                ),
            )

    def _observe(self, stream: FaceStream, busy_s: float) -> None:
        self._metrics.audio_seconds_total.labels(stream.backend).inc(stream.duration_s)
        self._metrics.frames_total.labels(stream.backend).inc(stream.frames_sent)
        if stream.duration_s > 0:
            self._metrics.real_time_factor.labels(stream.backend).observe(
                busy_s / stream.duration_s
            )
