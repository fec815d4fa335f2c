"""Collecting an ``AudioInput`` stream (header -> chunks -> end) into samples.

Shared by the services that take streamed audio (asr, face); proto <-> domain only.
"""

from __future__ import annotations

import numpy as np

from solami import audio
from solami.errors import InvalidInput
from solami.v1 import common_pb2

# Room for a WAV's header and extra chunks (LIST, fact, ...).
WAV_HEADER_BYTES = 64 * 1024
_BYTES_PER_SAMPLE = {
    common_pb2.AUDIO_ENCODING_PCM16: 2,
    common_pb2.AUDIO_ENCODING_FLOAT32: 4,
}


class AudioCollector:
    """Accumulates chunks after a header; checks order, format and the duration limit."""

    def __init__(self, max_duration_s: float) -> None:
        self._max_duration_s = max_duration_s
        self.header: common_pb2.AudioHeader | None = None
        self._parts: list[bytes] = []
        self._size = 0
        # A WAV stream's duration is known only once decoded: its bytes are capped at the
        # largest WAV of the limit's length (48 kHz stereo float32) plus a header allowance.
        self._max_bytes = int(
            max_duration_s * audio.MAX_SAMPLE_RATE_HZ * audio.MAX_CHANNELS * 4 + WAV_HEADER_BYTES
        )
        self.ended = False

    def add(self, message: common_pb2.AudioInput) -> None:
        """Takes the next stream message; raises InvalidInput for a malformed stream."""
        kind = message.WhichOneof("event")
        if kind == "header":
            self._set_header(message.header)
        elif kind == "chunk":
            if self.header is None:
                raise InvalidInput("audio stream must start with a header message")
            if self.ended:
                raise InvalidInput("audio chunk after the end message")
            self._parts.append(message.chunk.data)
            self._size += len(message.chunk.data)
            if self.duration_s > self._max_duration_s or self._size > self._max_bytes:
                raise InvalidInput(
                    f"audio stream is longer than the limit of {self._max_duration_s:.0f} s"
                )
        elif kind == "end":
            if self.header is None:
                raise InvalidInput("audio stream ended before its header")
            self.ended = True
        else:
            raise InvalidInput("audio stream message has no header, chunk or end")

    def _set_header(self, header: common_pb2.AudioHeader) -> None:
        if self.header is not None:
            raise InvalidInput("audio stream has a second header")
        if header.encoding == common_pb2.AUDIO_ENCODING_UNSPECIFIED:
            raise InvalidInput("audio header must set encoding (PCM16, FLOAT32 or WAV)")
        if header.encoding != common_pb2.AUDIO_ENCODING_WAV:
            if not audio.MIN_SAMPLE_RATE_HZ <= header.sample_rate_hz <= audio.MAX_SAMPLE_RATE_HZ:
                raise InvalidInput(
                    f"sample_rate_hz {header.sample_rate_hz} is not supported: use "
                    f"{audio.MIN_SAMPLE_RATE_HZ}-{audio.MAX_SAMPLE_RATE_HZ} Hz"
                )
            if header.channels not in (1, 2):
                raise InvalidInput(f"channels must be 1 or 2, got {header.channels}")
        self.header = header

    @property
    def duration_s(self) -> float:
        """Seconds of audio received so far (0 for WAV streams until decoded)."""
        header = self.header
        if header is None or header.encoding not in _BYTES_PER_SAMPLE:
            return 0.0
        frame_bytes = _BYTES_PER_SAMPLE[header.encoding] * header.channels
        return self._size / frame_bytes / header.sample_rate_hz

    def samples(self) -> tuple[np.ndarray, int]:
        """All audio received so far as mono float32 and its sample rate."""
        if self.header is None:
            raise InvalidInput("audio stream has no header")
        data = b"".join(self._parts)
        header = self.header
        if header.encoding == common_pb2.AUDIO_ENCODING_WAV:
            return audio.decode_wav(data, self._max_duration_s)
        channels = header.channels
        if header.encoding == common_pb2.AUDIO_ENCODING_PCM16:
            return audio.pcm16_to_float(data, channels), header.sample_rate_hz
        if len(data) % (4 * channels):
            raise InvalidInput("FLOAT32 audio does not hold whole sample frames")
        samples = np.frombuffer(data, dtype="<f4").reshape(-1, channels).mean(axis=1)
        return audio.check_samples(samples), header.sample_rate_hz
