"""MotionService: proto <-> domain conversion around the motion engine."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator

import grpc
import numpy as np
from prometheus_client import Counter

from services.motion.engine import MotionEngine
from services.motion.features import Motion
from solami.avatar.rates import FPS
from solami.avatar.skeleton import POSE_DIMS
from solami.errors import InvalidInput
from solami.metrics import ServiceMetrics
from solami.v1 import common_pb2, motion_pb2, motion_pb2_grpc

# MotionHeader.source of frames decoded from tokens.
VQVAE_SOURCE = "vqvae"


class MotionMetrics:
    """The motion service's own metrics, beside the runtime's RPC metrics."""

    def __init__(self, metrics: ServiceMetrics) -> None:
        self.frames_total = Counter(
            "solami_motion_frames_total",
            "SMPL-X frames received (encode, caption) or produced (decode, text2motion), by "
            "operation.",
            ("operation",),
            registry=metrics.registry,
        )
        self.tokens_total = Counter(
            "solami_motion_tokens_total",
            "Body + hand ids produced (encode) or consumed (decode), by operation.",
            ("operation",),
            registry=metrics.registry,
        )
        self.captions_total = Counter(
            "solami_motion_captions_total",
            "CaptionMotion answers, by outcome (captioned, or empty: nothing confident to say).",
            ("outcome",),
            registry=metrics.registry,
        )


def frames_to_arrays(
    frames: motion_pb2.SmplxFrames,
) -> tuple[np.ndarray, np.ndarray, int, bool]:
    """Flat poses and trans values, the frame count and whether they are Z-up."""
    poses = np.asarray(frames.poses, dtype=np.float64)
    trans = np.asarray(frames.trans, dtype=np.float64)
    return poses, trans, frames.n_frames, frames.up_axis == motion_pb2.UP_AXIS_Z


def motion_to_frames(motion: Motion) -> motion_pb2.SmplxFrames:
    return motion_pb2.SmplxFrames(
        n_frames=motion.n_frames,
        poses=motion.poses.astype(np.float32).ravel().tolist(),
        trans=motion.trans.astype(np.float32).ravel().tolist(),
        up_axis=motion_pb2.UP_AXIS_Y,
    )


def frame_block(
    turn: common_pb2.TurnContext, motion: Motion, start_frame: int
) -> motion_pb2.MotionEvent:
    return motion_pb2.MotionEvent(
        turn=turn,
        frames=motion_pb2.MotionFrameBlock(
            start_frame=start_frame,
            start_ms=round(start_frame * 1000 / FPS),
            frames=motion_to_frames(motion),
        ),
    )


def header(turn: common_pb2.TurnContext, source: str, score: float) -> motion_pb2.MotionEvent:
    return motion_pb2.MotionEvent(
        turn=turn,
        header=motion_pb2.MotionHeader(fps=FPS, pose_dims=POSE_DIMS, source=source, score=score),
    )


def end(turn: common_pb2.TurnContext, total_frames: int) -> motion_pb2.MotionEvent:
    return motion_pb2.MotionEvent(turn=turn, end=motion_pb2.MotionEnd(total_frames=total_frames))


def blocks(motion: Motion, size: int) -> Iterator[tuple[int, Motion]]:
    """(offset, frames) pieces of at most ``size`` frames."""
    for start in range(0, motion.n_frames, size):
        yield start, Motion(motion.poses[start : start + size], motion.trans[start : start + size])


class MotionServicer(motion_pb2_grpc.MotionServiceServicer):
    def __init__(self, engine: MotionEngine, metrics: ServiceMetrics) -> None:
        self._engine = engine
        self._metrics = MotionMetrics(metrics)

    async def EncodeUserMotion(
        self, request: motion_pb2.EncodeUserMotionRequest, context: grpc.aio.ServicerContext
    ) -> motion_pb2.EncodeUserMotionResponse:
        started = time.perf_counter()
        user = self._engine.check_user(*frames_to_arrays(request.user))
        character = self._engine.check_character(*frames_to_arrays(request.character))
        tokens = await asyncio.to_thread(self._engine.encode_user_motion, user, character)
        self._metrics.frames_total.labels("encode").inc(user.n_frames)
        self._metrics.tokens_total.labels("encode").inc(2 * len(tokens.body_ids))
        return motion_pb2.EncodeUserMotionResponse(
            turn=request.turn,
            trans_id=tokens.trans_id,
            body_ids=tokens.body_ids.tolist(),
            hand_ids=tokens.hand_ids.tolist(),
            processing_ms=round((time.perf_counter() - started) * 1000),
        )

    async def DecodeMotion(
        self,
        request_iterator: AsyncIterator[motion_pb2.DecodeMotionRequest],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[motion_pb2.MotionEvent]:
        session = self._engine.decode_session()
        turn, start_frame, started, ended = common_pb2.TurnContext(), 0, False, False
        async for message in request_iterator:
            kind = message.WhichOneof("event")
            turn = message.turn
            if not started:
                if kind != "config":
                    raise InvalidInput("a DecodeMotion stream must start with a config message")
                started, start_frame = True, message.config.start_frame
                yield header(turn, VQVAE_SOURCE, 0.0)
            elif kind == "tokens":
                body, hand = list(message.tokens.body_ids), list(message.tokens.hand_ids)
                offset = session.frames_done
                motion = await asyncio.to_thread(session.push, body, hand)
                self._metrics.tokens_total.labels("decode").inc(len(body) + len(hand))
                if motion is not None:
                    yield frame_block(turn, motion, start_frame + offset)
            elif kind == "end":
                ended = True
                break
            else:
                raise InvalidInput(f"unexpected {kind or 'empty'} message in a DecodeMotion stream")
        if not ended:
            raise InvalidInput("DecodeMotion stream closed without an end message")
        offset = session.frames_done
        motion = await asyncio.to_thread(session.finish)
        if motion is not None:
            yield frame_block(turn, motion, start_frame + offset)
        self._metrics.frames_total.labels("decode").inc(session.frames_done)
        yield end(turn, session.frames_done)

    async def TextToMotion(
        self, request: motion_pb2.TextToMotionRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[motion_pb2.MotionEvent]:
        retrieved = await asyncio.to_thread(
            self._engine.text_to_motion, request.text, request.duration_s, request.generate
        )
        yield header(request.turn, retrieved.name, retrieved.score)
        for offset, piece in blocks(retrieved.motion, self._engine.settings.block_frames):
            yield frame_block(request.turn, piece, request.start_frame + offset)
        self._metrics.frames_total.labels("text2motion").inc(retrieved.motion.n_frames)
        yield end(request.turn, retrieved.motion.n_frames)

    async def CaptionMotion(
        self, request: motion_pb2.CaptionMotionRequest, context: grpc.aio.ServicerContext
    ) -> motion_pb2.CaptionMotionResponse:
        started = time.perf_counter()
        user = self._engine.check_caption_user(*frames_to_arrays(request.user))
        caption = await asyncio.to_thread(self._engine.caption, user)
        self._metrics.frames_total.labels("caption").inc(user.n_frames)
        self._metrics.captions_total.labels("captioned" if caption.text else "empty").inc()
        return motion_pb2.CaptionMotionResponse(
            turn=request.turn,
            caption=caption.text,
            score=caption.score,
            source=caption.source,
            processing_ms=round((time.perf_counter() - started) * 1000),
        )
