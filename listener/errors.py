"""Every error social-listener raises on purpose, in one tree.

    ListenerError
    ├── InputError              bad data from a user: a file, a line, a value
    │   ├── ConfigError         a config or rule file that does not validate (carries problems)
    │   └── MentionError        one mention that does not fit the mention format
    ├── StoreError              the SQLite store cannot be opened or migrated
    ├── SourceError             a platform call failed (carries the platform)
    │   ├── RateLimitedError    the platform said slow down (carries retry_after_s)
    │   └── SourceUnavailableError  timeouts, 5xx, garbage bodies: try again later
    └── PublishError            the MQTT broker cannot be reached or refused us

Third-party exceptions (aiohttp, aiomqtt, sqlite3) are translated into these where
those libraries are used; the core never sees them.
"""

from __future__ import annotations

from dataclasses import dataclass


class ListenerError(Exception):
    """Base of every error social-listener raises on purpose."""


class InputError(ListenerError):
    """Bad input from a user."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong in a file, located to the character."""

    file: str
    line: int | None
    column: int | None
    message: str
    severity: str = "error"  # "error" or "warning"

    def __str__(self) -> str:
        where = self.file
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        prefix = "" if self.severity == "error" else f"{self.severity}: "
        return f"{where}: {prefix}{self.message}"


class ConfigError(InputError):
    """A config or rule file that does not validate."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class MentionError(InputError):
    """A mention that does not fit the mention format."""


class StoreError(ListenerError):
    """The store cannot be opened, migrated or written."""


class SourceError(ListenerError):
    """A call to a platform failed."""

    def __init__(self, platform: str, message: str) -> None:
        self.platform = platform
        super().__init__(f"{platform}: {message}")


class RateLimitedError(SourceError):
    """The platform asked us to slow down."""

    def __init__(self, platform: str, message: str, retry_after_s: float) -> None:
        self.retry_after_s = retry_after_s
        super().__init__(platform, message)


class SourceUnavailableError(SourceError):
    """Timeouts, 5xx answers and malformed bodies: the source is down for now."""


class PublishError(ListenerError):
    """The broker cannot be reached, or refused a publish."""
