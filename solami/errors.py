"""Exceptions engines and servicers raise; the error interceptor maps them to gRPC status codes.

This module imports no grpc: engines raise these without knowing how they are served.
"""

from __future__ import annotations


class SolamiError(Exception):
    """Base class; an unexpected SolamiError is reported as INTERNAL."""


class InvalidInput(SolamiError):
    """The request cannot be served as sent (-> INVALID_ARGUMENT). The message tells the user
    what was wrong and what is accepted."""


class Overloaded(SolamiError):
    """The service is at capacity; retry later (-> RESOURCE_EXHAUSTED)."""


class EngineUnavailable(SolamiError):
    """The model is not loaded, failed, or is shutting down (-> UNAVAILABLE)."""


class DeadlineExceeded(SolamiError):
    """The work did not finish within its time budget (-> DEADLINE_EXCEEDED)."""
