"""Structured JSON logs: one line per event, through the standard `logging` module.

Code logs an event name and its fields with `extra=`:

    log.info("message delivered", extra={"message_id": record.id, "destination": 2})

and `JsonFormatter` writes `{"ts": ..., "level": "info", "role": "relayer", "logger": ...,
"event": "message delivered", "message_id": "0x…", "destination": 2}`. Bytes become 0x-hex.
`configure_logging(role)` installs it on the root logger once per process; the level comes from
the argument, else `RELAY_LOG_LEVEL`, else INFO. Secrets must never be passed as fields.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from typing import IO, Any

# Attributes every LogRecord has; anything else on a record came from `extra=`.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message",
    "asctime",
    "taskName",
}


def _jsonable(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return "0x" + bytes(value).hex()
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_jsonable(v) for v in value]
    name = getattr(value, "name", None)  # enums
    return name if isinstance(name, str) else str(value)


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON object: time, level, role, logger, event, then the extra fields."""

    def __init__(self, role: str = "") -> None:
        super().__init__()
        self.role = role

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
        }
        if self.role:
            entry["role"] = self.role
        entry["logger"] = record.name
        entry["event"] = record.getMessage()
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = _jsonable(value)
        if record.exc_info and record.exc_info[0] is not None:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, separators=(",", ":"), ensure_ascii=False)


def configure_logging(
    role: str, level: str | int | None = None, stream: IO[str] | None = None
) -> logging.Handler:
    """Send every log record to `stream` (default stderr) as JSON lines tagged with `role`."""
    chosen = level if level is not None else os.environ.get("RELAY_LOG_LEVEL", "INFO")
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter(role))
    root = logging.getLogger()
    for existing in list(root.handlers):
        if isinstance(existing.formatter, JsonFormatter):
            root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(chosen.upper() if isinstance(chosen, str) else chosen)
    return handler
