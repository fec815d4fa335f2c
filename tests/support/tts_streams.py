"""Building tts request streams, reading speech event streams back, and measuring pitch."""

from __future__ import annotations

import dataclasses

import numpy as np

from solami import audio
from solami.v1 import common_pb2, tts_pb2

TURN = common_pb2.TurnContext(session_id="test", turn_id="t1")
# Pitch search range of ``median_pitch_hz``, in Hz.
PITCH_RANGE_HZ = (60.0, 500.0)
# Analysis frame of ``median_pitch_hz``, in seconds.
PITCH_FRAME_S = 0.04


def synthesize_requests(pieces: list[str], **config) -> list[tts_pb2.SynthesizeRequest]:
    requests = [tts_pb2.SynthesizeRequest(turn=TURN, config=tts_pb2.SpeechConfig(**config))]
    requests += [
        tts_pb2.SynthesizeRequest(turn=TURN, text=tts_pb2.TextPiece(text=piece, index=i))
        for i, piece in enumerate(pieces)
    ]
    requests.append(tts_pb2.SynthesizeRequest(turn=TURN, end=common_pb2.StreamEnd()))
    return requests


def vocode_requests(chunks: list[list[int]], **config) -> list[tts_pb2.VocodeRequest]:
    requests = [tts_pb2.VocodeRequest(turn=TURN, config=tts_pb2.SpeechConfig(**config))]
    requests += [
        tts_pb2.VocodeRequest(turn=TURN, units=tts_pb2.UnitChunk(ids=chunk)) for chunk in chunks
    ]
    requests.append(tts_pb2.VocodeRequest(turn=TURN, end=common_pb2.StreamEnd()))
    return requests


@dataclasses.dataclass
class Speech:
    """A speech event stream, read back."""

    kinds: list[str]
    sample_rate_hz: int
    chunks: list[common_pb2.AudioChunk]
    phonemes: list[common_pb2.PhonemeTiming]
    words: list[common_pb2.WordTiming]
    end: common_pb2.AudioEnd | None

    @property
    def samples(self) -> np.ndarray:
        if not self.chunks:
            return np.zeros(0, np.float32)
        return audio.pcm16_to_float(b"".join(c.data for c in self.chunks))

    @property
    def duration_s(self) -> float:
        return self.samples.size / self.sample_rate_hz


def read_speech(events) -> Speech:
    speech = Speech([], 0, [], [], [], None)
    for event in events:
        kind = event.WhichOneof("event")
        speech.kinds.append(kind)
        if kind == "header":
            speech.sample_rate_hz = event.header.sample_rate_hz
        elif kind == "audio":
            speech.chunks.append(event.audio)
        elif kind == "timings":
            speech.phonemes += event.timings.phonemes
            speech.words += event.timings.words
        elif kind == "end":
            speech.end = event.end
    return speech


def median_pitch_hz(samples: np.ndarray, rate_hz: int) -> float:
    """Median fundamental frequency of the loud frames (autocorrelation peak)."""
    frame = int(PITCH_FRAME_S * rate_hz)
    low_lag, high_lag = int(rate_hz / PITCH_RANGE_HZ[1]), int(rate_hz / PITCH_RANGE_HZ[0])
    loudness = np.sqrt(np.mean(samples**2))
    pitches = []
    for start in range(0, samples.size - frame, frame // 2):
        x = samples[start : start + frame]
        if np.sqrt(np.mean(x**2)) < loudness:
            continue
        x = x - x.mean()
        corr = np.correlate(x, x, mode="full")[frame - 1 :]
        lag = low_lag + int(np.argmax(corr[low_lag:high_lag]))
        if corr[lag] > 0.3 * corr[0]:
            pitches.append(rate_hz / lag)
    return float(np.median(pitches)) if pitches else 0.0
