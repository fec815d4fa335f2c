"""Typed client of the face service: speech audio -> face frames in the avatar's channel order."""

from __future__ import annotations

import numpy as np

from relay.clients.base import ServiceClient, retime
from solami import audio
from solami.avatar.face import CHANNEL_COUNT, INDEX
from solami.avatar.rates import FPS
from solami.v1 import common_pb2, face_pb2


class FaceClient(ServiceClient):
    service = "face"

    async def animate(
        self,
        turn: common_pb2.TurnContext,
        samples: np.ndarray,
        rate_hz: int,
        timings: list[common_pb2.PhonemeTiming] | None = None,
    ) -> np.ndarray:
        """Face frames ``(frames, 61)`` at ``FPS`` for the audio, in ``solami.avatar.face``
        channel order whatever order and rate the service sends (its header names them)."""

        def requests():
            header = common_pb2.AudioHeader(
                sample_rate_hz=rate_hz, channels=1, encoding=common_pb2.AUDIO_ENCODING_PCM16
            )
            yield face_pb2.AnimateRequest(turn=turn, config=face_pb2.FaceConfig(audio=header))
            if timings:
                yield face_pb2.AnimateRequest(
                    turn=turn, timings=common_pb2.SpeechTimings(phonemes=timings)
                )
            pcm = audio.float_to_pcm16(samples)
            yield face_pb2.AnimateRequest(turn=turn, audio=common_pb2.AudioChunk(data=pcm))
            yield face_pb2.AnimateRequest(turn=turn, end=common_pb2.StreamEnd())

        fps, columns, blocks = float(FPS), list(range(CHANNEL_COUNT)), []
        call = self._stub.Animate(requests(), timeout=self.deadline_s)
        async for event in self.stream("Animate", call):
            if event.HasField("header"):
                fps = event.header.fps or fps
                columns = [INDEX.get(name, -1) for name in event.header.channel_names] or columns
            elif event.HasField("frames"):
                weights = self.rows(event.frames.weights, len(columns), "face frames")
                frames = np.zeros((len(weights), CHANNEL_COUNT), np.float32)
                known = [i for i, column in enumerate(columns) if column >= 0]
                frames[:, [columns[i] for i in known]] = weights[:, known]
                blocks.append(frames)
        frames = np.concatenate(blocks) if blocks else np.zeros((0, CHANNEL_COUNT), np.float32)
        return retime(frames, fps, FPS)
