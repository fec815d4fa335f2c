"""The one server interceptor: gates on readiness, times every RPC and maps errors to codes.

Mapping (STYLE): InvalidInput -> INVALID_ARGUMENT, Overloaded -> RESOURCE_EXHAUSTED,
EngineUnavailable -> UNAVAILABLE, DeadlineExceeded/TimeoutError -> DEADLINE_EXCEEDED, anything
else -> INTERNAL with a reference id that is also logged with the traceback.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from solami import errors
from solami.logs import log_event
from solami.metrics import ServiceMetrics

log = logging.getLogger(__name__)

_CODES: tuple[tuple[type[BaseException], grpc.StatusCode], ...] = (
    (errors.InvalidInput, grpc.StatusCode.INVALID_ARGUMENT),
    (errors.Overloaded, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (errors.EngineUnavailable, grpc.StatusCode.UNAVAILABLE),
    (errors.DeadlineExceeded, grpc.StatusCode.DEADLINE_EXCEEDED),
    (TimeoutError, grpc.StatusCode.DEADLINE_EXCEEDED),
)

# Methods of the standard services (health, reflection) pass through untouched.
_PASSTHROUGH_PREFIX = "/grpc."


def status_for(exc: BaseException) -> tuple[grpc.StatusCode, str]:
    """The status code and client-facing message for an exception raised while serving."""
    for kind, code in _CODES:
        if isinstance(exc, kind):
            return code, str(exc) or kind.__name__
    ref = uuid.uuid4().hex[:12]
    log.error("unhandled error", exc_info=exc, extra={"fields": {"error_ref": ref}})
    return grpc.StatusCode.INTERNAL, f"internal error (ref {ref}); the server log has details"


class ServiceInterceptor(grpc.aio.ServerInterceptor):
    """Wraps every application RPC handler with readiness gating, metrics and error mapping."""

    def __init__(self, metrics: ServiceMetrics, is_ready: Callable[[], str | None]) -> None:
        # is_ready returns None when requests may be served, else the reason they may not.
        self._metrics = metrics
        self._is_ready = is_ready

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        method_path = handler_call_details.method
        if handler is None or method_path.startswith(_PASSTHROUGH_PREFIX):
            return handler
        method = method_path.rsplit("/", 1)[-1]
        if handler.response_streaming:
            behavior = handler.unary_stream or handler.stream_stream
            wrapped = self._wrap_stream(method, behavior)
            factory = (
                grpc.unary_stream_rpc_method_handler
                if handler.unary_stream
                else grpc.stream_stream_rpc_method_handler
            )
        else:
            behavior = handler.unary_unary or handler.stream_unary
            wrapped = self._wrap_unary(method, behavior)
            factory = (
                grpc.unary_unary_rpc_method_handler
                if handler.unary_unary
                else grpc.stream_unary_rpc_method_handler
            )
        return factory(
            wrapped,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )

    async def _refuse_if_not_ready(self, context: grpc.aio.ServicerContext) -> None:
        reason = self._is_ready()
        if reason is not None:
            await context.abort(grpc.StatusCode.UNAVAILABLE, reason)

    def _wrap_unary(self, method: str, behavior: Callable[..., Any]) -> Callable[..., Any]:
        async def wrapped(request: Any, context: grpc.aio.ServicerContext) -> Any:
            with _Observed(self._metrics, method, context) as observed:
                await self._refuse_if_not_ready(context)
                try:
                    return await behavior(request, context)
                except (asyncio.CancelledError, grpc.aio.AbortError):
                    raise
                except Exception as exc:  # noqa: BLE001 - mapped to a status code
                    await observed.abort(exc)

        return wrapped

    def _wrap_stream(self, method: str, behavior: Callable[..., Any]) -> Callable[..., Any]:
        async def wrapped(request: Any, context: grpc.aio.ServicerContext) -> Any:
            with _Observed(self._metrics, method, context) as observed:
                await self._refuse_if_not_ready(context)
                try:
                    async for response in behavior(request, context):
                        yield response
                except (asyncio.CancelledError, grpc.aio.AbortError):
                    raise
                except Exception as exc:  # noqa: BLE001 - mapped to a status code
                    await observed.abort(exc)

        return wrapped


class _Observed:
    """Context manager recording one RPC's duration, in-flight count and final status code."""

    def __init__(
        self, metrics: ServiceMetrics, method: str, context: grpc.aio.ServicerContext
    ) -> None:
        self._metrics = metrics
        self._method = method
        self._context = context
        self._code: grpc.StatusCode | None = None

    def __enter__(self) -> _Observed:
        self._start = time.perf_counter()
        self._metrics.inflight_requests.labels(self._method).inc()
        return self

    async def abort(self, exc: BaseException) -> None:
        code, message = status_for(exc)
        self._code = code
        await self._context.abort(code, message)

    def __exit__(self, exc_type: type[BaseException] | None, exc: Any, tb: Any) -> None:
        elapsed = time.perf_counter() - self._start
        code = self._code
        if code is None:
            if exc_type is asyncio.CancelledError or exc_type is GeneratorExit:
                code = grpc.StatusCode.CANCELLED
            else:
                code = self._context.code() or grpc.StatusCode.OK
                if not isinstance(code, grpc.StatusCode):
                    code = _code_from_int(code)
        self._metrics.inflight_requests.labels(self._method).dec()
        self._metrics.requests_total.labels(self._method, code.name).inc()
        self._metrics.request_duration_seconds.labels(self._method).observe(elapsed)
        log_event(
            log,
            "rpc finished",
            logging.DEBUG if code == grpc.StatusCode.OK else logging.INFO,
            method=self._method,
            code=code.name,
            duration_ms=round(elapsed * 1000, 1),
        )


def _code_from_int(value: int) -> grpc.StatusCode:
    for code in grpc.StatusCode:
        if code.value[0] == value:
            return code
    return grpc.StatusCode.UNKNOWN
