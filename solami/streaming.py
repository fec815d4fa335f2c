"""Bridging a blocking generator (model inference in a worker thread) to an async stream.

The consumer (a servicer's async generator) gets items as the thread produces them. When the
consumer stops early (the RPC was cancelled: barge-in), the cancel event is set so the producer
stops at its next step, and the thread is awaited so its resources are released.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from typing import TypeVar

T = TypeVar("T")

_DONE = object()


async def iterate_in_thread(
    produce: Callable[[threading.Event], Iterator[T]], queue_size: int = 64
) -> AsyncIterator[T]:
    """Runs ``produce(cancel)`` in a thread and yields its items on the event loop."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[object] = asyncio.Queue(queue_size)
    cancel = threading.Event()

    def put(item: object) -> None:
        future = asyncio.run_coroutine_threadsafe(queue.put(item), loop)
        while not cancel.is_set():
            try:
                future.result(timeout=0.1)
                return
            except TimeoutError:
                continue
        future.cancel()

    def run() -> None:
        try:
            for item in produce(cancel):
                put(item)
                if cancel.is_set():
                    break
        except BaseException as exc:  # noqa: BLE001 - re-raised on the event loop
            put(exc)
        else:
            put(_DONE)

    worker = loop.run_in_executor(None, run)
    try:
        while True:
            item = await queue.get()
            if item is _DONE:
                break
            if isinstance(item, BaseException):
                raise item
            yield item  # type: ignore[misc]
    finally:
        cancel.set()
        while not queue.empty():
            queue.get_nowait()
        await asyncio.shield(worker)
