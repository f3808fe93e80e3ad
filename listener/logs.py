"""Logging for a daemon under journald: one JSON object per line, or readable lines on a terminal.

Every record carries an `event` (the message) and context fields passed as `extra=`
(watch, platform, rule, alert_id, ...). Secret values registered with `redact()` are
replaced wherever they appear, so a token in an exception text never reaches the journal.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
from datetime import datetime, timezone
from typing import Any, TextIO

# Attributes every LogRecord has; anything else came in through `extra=` and is context.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "taskName"}
_secrets: set[str] = set()
_lock = threading.Lock()
MASK = "***"


def redact(*values: str | None) -> None:
    """Never log these values (passwords, tokens): they are replaced by ***."""
    with _lock:
        _secrets.update(v for v in values if v and len(v) >= 4)


def scrub(text: str) -> str:
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    return text


def _context(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")}


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, (int, float, bool)) or value is None:
        return value
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_clean(v) for v in value]
    return scrub(str(value))


class JsonFormatter(logging.Formatter):
    """time, level, event, logger, then context fields; exceptions as `error` and `traceback`."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, tz=timezone.utc).isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "event": scrub(record.getMessage()),
            "logger": record.name,
        }
        for key, value in _context(record).items():
            out.setdefault(key, _clean(value))
        if record.exc_info and record.exc_info[1] is not None:
            out["error"] = scrub(f"{type(record.exc_info[1]).__name__}: {record.exc_info[1]}")
            out["traceback"] = scrub(self.formatException(record.exc_info))
        return json.dumps(out, ensure_ascii=False, default=str)


class ConsoleFormatter(logging.Formatter):
    """`HH:MM:SS level event key=value ...` for a person at a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        when = datetime.fromtimestamp(record.created).strftime("%H:%M:%S")
        context = " ".join(f"{k}={_clean(v)}" for k, v in _context(record).items())
        line = f"{when} {record.levelname.lower():<7} {scrub(record.getMessage())}"
        if context:
            line += f"  {context}"
        if record.exc_info and record.exc_info[1] is not None:
            line += "\n" + scrub(self.formatException(record.exc_info))
        return line


def configure_logging(fmt: str = "auto", level: str = "info", stream: TextIO | None = None) -> None:
    """Send the `listener` loggers (and warnings from libraries) to `stream` (stdout by default)."""
    stream = stream or sys.stdout
    if fmt == "auto":
        fmt = "console" if stream.isatty() else "json"
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter() if fmt == "json" else ConsoleFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    logging.getLogger("listener").setLevel(level.upper())
