"""Structured logs (JSON lines or key=value) carrying ids and durations, never user content.

Call sites pass fields with ``extra={"fields": {...}}`` or use ``log_event``; the formatter
writes them next to the message. Transcripts, replies and audio never go in a field.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

_CONFIGURED_MARK = "_solami_handler"


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        entry.update(getattr(record, "fields", {}))
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class _KeyValueFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        parts = [
            f"ts={self.formatTime(record, '%Y-%m-%dT%H:%M:%S')}",
            f"level={record.levelname.lower()}",
            f"logger={record.name}",
            f"msg={json.dumps(record.getMessage())}",
        ]
        for key, value in getattr(record, "fields", {}).items():
            text = value if isinstance(value, int | float) else json.dumps(str(value))
            parts.append(f"{key}={text}")
        line = " ".join(parts)
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def configure_logging(fmt: str = "json", level: str = "INFO") -> None:
    """Installs one stderr handler on the root logger (idempotent)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, _CONFIGURED_MARK, False):
            root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_JsonFormatter() if fmt == "json" else _KeyValueFormatter())
    setattr(handler, _CONFIGURED_MARK, True)
    root.addHandler(handler)
    root.setLevel(level.strip().upper())


def log_event(logger: logging.Logger, msg: str, level: int = logging.INFO, **fields: Any) -> None:
    """Logs ``msg`` with structured ``fields`` (ids, durations, counts — no user content)."""
    logger.log(level, msg, extra={"fields": fields})
