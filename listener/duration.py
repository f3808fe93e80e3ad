"""Durations written the way people write them: `90s`, `15m`, `2h`, `7d`, `1w`, `1h30m`, or plain seconds."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BeforeValidator, WithJsonSchema

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_PATTERN = re.compile(r"^\s*(?:\d+(?:\.\d+)?\s*[smhdw]\s*)+$")  # one or more parts: 90s, 1h30m, 1d 12h
_PART = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])")
PATTERN_TEXT = r"^\s*(\d+(\.\d+)?\s*[smhdw]\s*)+$"


def parse_duration(value: Any) -> float:
    """Seconds in a duration; raises ValueError with the accepted forms."""
    if isinstance(value, bool):
        raise ValueError("a duration is a number of seconds or a text like 90s, 15m, 2h, 7d")
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str) and _PATTERN.match(value):
        seconds = sum(float(n) * _UNITS[unit] for n, unit in _PART.findall(value))
    else:
        raise ValueError(f"{value!r} is not a duration: write e.g. 90s, 15m, 2h or 7d")
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    return seconds


def format_duration(seconds: float) -> str:
    """The shortest exact form: 900 -> '15m', 5400 -> '90m', 45 -> '45s'."""
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


Duration = Annotated[
    float,
    BeforeValidator(parse_duration),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": PATTERN_TEXT},
                {"type": "number", "minimum": 0},
            ],
            "description": "A duration: 90s, 15m, 2h, 7d, 1w, 1h30m, or a number of seconds.",
        }
    ),
]


def format_span(seconds: float) -> str:
    """A rough, readable length of time for messages: '7d 1h', '2h 30m', '45s'."""
    total = int(round(max(seconds, 0)))
    parts: list[str] = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if total >= size or (unit == "s" and not parts):
            parts.append(f"{total // size}{unit}")
            total %= size
        if len(parts) == 2:
            break
    return " ".join(parts)
