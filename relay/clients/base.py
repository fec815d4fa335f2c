"""What every typed service client shares: its stub's deadline, gRPC errors mapped to
``TurnError``, cancellation of abandoned streams, and per-call metrics.

The clients wrap the generated stubs the way text-generation-inference's router wraps its
gRPC client: callers see domain values and one error type, never protobuf or ``grpc``.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Callable, Iterator

import grpc
import numpy as np

from relay.errors import TurnError
from relay.metrics import RelayMetrics


class ServiceClient:
    """Base of the typed clients of one service."""

    # Registry name of the service ("asr"): the turn stage its failures are reported as.
    service = ""
    # INVALID_ARGUMENT from this service means the user's input was refused (stage "input").
    invalid_argument_is_input = False

    def __init__(self, stub, deadline_s: float, metrics: RelayMetrics) -> None:
        self._stub = stub
        self.deadline_s = deadline_s
        self._metrics = metrics

    def error(self, exc: grpc.aio.AioRpcError) -> TurnError:
        """The turn error of a failed call."""
        code = exc.code()
        input_refused = self.invalid_argument_is_input and code == grpc.StatusCode.INVALID_ARGUMENT
        return TurnError(
            "input" if input_refused else self.service, f"{code.name}: {exc.details() or ''}"
        )

    @contextlib.contextmanager
    def call(
        self, rpc: str, failed: Callable[[grpc.StatusCode], None] | None = None
    ) -> Iterator[None]:
        """Times one call of ``rpc`` and maps its gRPC error to ``TurnError`` (telling
        ``failed`` its status code first)."""
        started = time.perf_counter()
        code = "OK"
        try:
            yield
        except grpc.aio.AioRpcError as exc:
            code = exc.code().name
            if failed is not None:
                failed(exc.code())
            raise self.error(exc) from None
        except BaseException:  # cancelled by the caller (barge-in), or a caller's error
            code = "CANCELLED"
            raise
        finally:
            self._metrics.observe_call(self.service, rpc, code, time.perf_counter() - started)

    def rows(self, values, width: int, what: str) -> np.ndarray:
        """``values`` (a repeated float field) as float32 rows of ``width``; a response whose
        length does not fit is this service's failure, not the relay's."""
        array = np.asarray(values, np.float32)
        if width <= 0 or array.size % width:
            raise TurnError(self.service, f"{what}: {array.size} values are not rows of {width}")
        return array.reshape(-1, width)

    async def stream(
        self,
        rpc: str,
        call: grpc.aio.Call,
        failed: Callable[[grpc.StatusCode], None] | None = None,
    ) -> AsyncIterator:
        """The responses of a streaming ``call``; closing the iterator cancels the call at once
        (gRPC would otherwise keep it running until garbage collection)."""
        with self.call(rpc, failed):
            try:
                async for response in call:
                    yield response
            finally:
                call.cancel()


def retime(frames: np.ndarray, fps: float, target_fps: float) -> np.ndarray:
    """Frames sampled at ``fps`` as frames at ``target_fps`` over the same time (the nearest
    earlier frame); unchanged when the rates agree."""
    if not len(frames) or abs(fps - target_fps) < 1e-6 or fps <= 0:
        return frames
    count = max(1, round(len(frames) * target_fps / fps))
    index = np.minimum((np.arange(count) * fps / target_fps).astype(int), len(frames) - 1)
    return frames[index]
