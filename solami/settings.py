"""Settings read once from prefixed environment variables into frozen dataclasses.

Every field of a settings dataclass maps to ``<PREFIX><FIELD_NAME_UPPER>``; for the asr service
``port`` is read from ``SOLAMI_ASR_PORT``. A value that cannot be parsed raises ``SettingsError``
naming the variable, so a typo fails at start rather than at the first request.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class SettingsError(ValueError):
    """A setting's environment variable holds a value that cannot be used."""


def _parse(raw: str, kind: Any, var: str) -> Any:
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(kind) if a is not type(None)]
        if raw == "":
            return None
        return _parse(raw, options[0], var)
    if kind is bool:
        lowered = raw.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise SettingsError(f"{var} must be a boolean (true/false), got {raw!r}")
    if kind is int:
        try:
            return int(raw.strip())
        except ValueError:
            raise SettingsError(f"{var} must be an integer, got {raw!r}") from None
    if kind is float:
        try:
            return float(raw.strip())
        except ValueError:
            raise SettingsError(f"{var} must be a number, got {raw!r}") from None
    if kind is Path:
        return Path(raw).expanduser()
    if origin is tuple:
        return tuple(part.strip() for part in raw.split(",") if part.strip())
    return raw


# Settings variables that were renamed: old name -> new name. Setting an old one is a start
# error rather than a value silently ignored.
RENAMED_SETTINGS = {"SOLAMI_LLM_ENGINE": "SOLAMI_LLM_BACKEND"}


def load_settings(cls: type[T], prefix: str, environ: Mapping[str, str] | None = None) -> T:
    """Builds ``cls`` from ``environ`` (default ``os.environ``), fields named ``prefix + NAME``."""
    env = os.environ if environ is None else environ
    for old, new in RENAMED_SETTINGS.items():
        if old.startswith(prefix) and old in env:
            raise SettingsError(f"{old} was renamed {new}: set {new} instead")
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for field in dataclasses.fields(cls):  # type: ignore[arg-type]
        var = f"{prefix}{field.name.upper()}"
        if var in env:
            values[field.name] = _parse(env[var], hints[field.name], var)
    instance = cls(**values)
    # Every settings class with a log level (services and relay) gets it checked here, so a
    # typo fails at start instead of in configure_logging.
    if "log_level" in values:
        check_log_level(f"{prefix}LOG_LEVEL", values["log_level"])
    validate = getattr(instance, "validate", None)
    if validate is not None:
        validate(prefix)
    return instance


def check_port(var: str, port: int, allow_zero: bool = True) -> None:
    """Raises SettingsError unless ``port`` is a TCP port (0 = pick a free one, when allowed)."""
    low = 0 if allow_zero else 1
    if not low <= port <= 65535:
        raise SettingsError(f"{var} must be a TCP port between {low} and 65535, got {port}")


def check_log_level(var: str, level: str) -> None:
    """Raises SettingsError unless ``level`` names a logging level (any case)."""
    known = logging.getLevelNamesMapping()
    if level.strip().upper() not in known:
        names = ", ".join(name for name in known if name not in ("WARN", "FATAL"))
        raise SettingsError(f"{var} must be a log level ({names}), got {level!r}")


def check_positive(var: str, value: float) -> None:
    """Raises SettingsError unless ``value`` is a finite number > 0."""
    if not (math.isfinite(value) and value > 0):
        raise SettingsError(f"{var} must be a number > 0, got {value}")


@dataclasses.dataclass(frozen=True)
class ServiceSettings:
    """Settings every gRPC service shares; services subclass it with their own fields."""

    # Interface the gRPC server binds to.
    host: str = "0.0.0.0"
    # gRPC port; 0 picks a free port (tests). Each service subclass sets its default.
    port: int = 0
    # Port of the Prometheus /metrics HTTP endpoint; 0 picks a free port; -1 disables it.
    metrics_port: int = 0
    # Seconds in-flight RPCs get to finish after SIGTERM before they are cancelled.
    grace_s: float = 10.0
    # Largest request or response message, in MiB (a 60 s 48 kHz stereo WAV is ~11 MiB).
    max_message_mb: int = 32
    # RPCs served at once before new ones get RESOURCE_EXHAUSTED.
    max_concurrent_rpcs: int = 64
    # Seconds between keepalive pings to idle clients.
    keepalive_s: float = 30.0
    # Seconds to wait for a keepalive ping's ack before closing the connection.
    keepalive_timeout_s: float = 10.0
    # Seconds a client connection may live before the server asks the client to reconnect
    # (after its calls finish, within ``connection_grace_s``): clients then resolve a
    # ``dns:///`` name again, so replicas added since get calls too.
    max_connection_age_s: float = 300.0
    # Seconds the calls of an aged connection get to finish (longer than any turn's deadline).
    connection_grace_s: float = 60.0
    # Log format: "json" or "text" (key=value).
    log_format: str = "json"
    # Log level name.
    log_level: str = "INFO"

    def validate(self, prefix: str = "") -> None:
        """Raises SettingsError, naming the variable, for values that parse but cannot work."""
        check_port(f"{prefix}PORT", self.port)
        if self.metrics_port != -1:
            check_port(f"{prefix}METRICS_PORT", self.metrics_port)
        if self.grace_s < 0:
            raise SettingsError(f"{prefix}GRACE_S must be >= 0, got {self.grace_s}")
        if self.max_message_mb < 1:
            raise SettingsError(f"{prefix}MAX_MESSAGE_MB must be >= 1, got {self.max_message_mb}")
        if self.max_concurrent_rpcs < 1:
            raise SettingsError(
                f"{prefix}MAX_CONCURRENT_RPCS must be >= 1, got {self.max_concurrent_rpcs}"
            )
        check_positive(f"{prefix}KEEPALIVE_S", self.keepalive_s)
        check_positive(f"{prefix}MAX_CONNECTION_AGE_S", self.max_connection_age_s)
        check_positive(f"{prefix}CONNECTION_GRACE_S", self.connection_grace_s)
        check_positive(f"{prefix}KEEPALIVE_TIMEOUT_S", self.keepalive_timeout_s)
        check_log_level(f"{prefix}LOG_LEVEL", self.log_level)
        if self.log_format not in ("json", "text"):
            raise SettingsError(
                f"{prefix}LOG_FORMAT must be 'json' or 'text', got {self.log_format!r}"
            )
