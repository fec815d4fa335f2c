"""The interface every service's engine implements: load, warm up, run, shut down.

Engines import no grpc. They are called from worker threads (``asyncio.to_thread``), so an
engine around a stateful model guards it with a lock.
"""

from __future__ import annotations

import abc
import asyncio


class Engine(abc.ABC):
    """A model behind a service. The runtime calls ``load`` then ``warmup`` before serving."""

    #: Short backend name reported in responses and metrics labels ("faster-whisper").
    name: str = "engine"

    @abc.abstractmethod
    def load(self) -> None:
        """Loads weights; may take long. Raises on failure (the service then exits)."""

    @abc.abstractmethod
    def warmup(self) -> None:
        """Runs one representative inference so the first real request is not slow."""

    async def warmup_async(self) -> None:
        """Warm-up as awaited by the runtime; engines whose model lives on the event loop
        (an async engine) override this instead of ``warmup``."""
        await asyncio.to_thread(self.warmup)

    def shutdown(self) -> None:  # noqa: B027 - optional hook
        """Frees the model. Called once, after the server has drained."""

    @property
    def healthy(self) -> bool:
        """False once the engine can no longer serve (health goes NOT_SERVING)."""
        return True
