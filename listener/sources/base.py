"""What every source shares: the watch it serves, the batch it returns, the health it reports.

A source is a small class per platform with typed settings and one method,
`async fetch(watch, cursor) -> Batch`. The aiohttp session is passed in, never created
inside. The cursor is an opaque string the source alone understands; the caller stores
`Batch.next_cursor` in the same transaction as the batch's mentions, so a crash never
skips posts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal, Mapping, Protocol

from pydantic import BaseModel, ConfigDict, Field, field_validator

from listener.duration import Duration
from listener.mention import Mention

WatchKind = Literal["account", "hashtag", "query", "post"]


class Watch(BaseModel):
    """Something to listen for, on one or more platforms (config: `watches:`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$", description="Unique watch id; alerts and rules name it.")
    kind: WatchKind = Field(description="account, hashtag, query or post.")
    targets: dict[str, str] = Field(
        description="Platform -> what to watch there: a handle, a hashtag, a query or a post id/URL."
    )
    platforms: list[str] | None = Field(None, description="Only these of the targets' platforms (default: all).")
    interval: Duration = Field(60.0, description="How often to poll, e.g. 30s, 5m.")

    @field_validator("interval")
    @classmethod
    def _interval_positive(cls, value: float) -> float:
        if value < 1:
            raise ValueError("interval must be at least 1s")
        return value

    def jobs(self) -> list[tuple[str, str]]:
        """(platform, target) pairs: one scheduled job each."""
        wanted = self.platforms or list(self.targets)
        return [(p, self.targets[p]) for p in wanted if p in self.targets]

    @staticmethod
    def job_key(platform: str, watch_id: str) -> str:
        """The key a job's cursor and health are stored under."""
        return f"{platform}:{watch_id}"


@dataclass(frozen=True)
class Batch:
    """What one fetch found: mentions (normalised, unscored) and the cursor to store with them."""

    mentions: list[Mention]
    next_cursor: str | None


@dataclass
class SourceHealth:
    """Reported by each job for the health endpoint and the flatline rule."""

    key: str
    last_success_ts: float | None = None
    last_error_ts: float | None = None
    last_error: str | None = None
    consecutive_failures: int = 0
    backoff_until_ts: float | None = None
    mentions_total: int = 0
    extra: dict[str, str] = field(default_factory=dict)


class Source(Protocol):
    """One platform. Raises listener.errors.SourceError (or a subclass) when a fetch fails."""

    platform: str

    async def fetch(self, watch: Watch, target: str, cursor: str | None) -> Batch: ...


class TokenKeeper(Protocol):
    """Keeps a source's login session between runs (the daemon gives one backed by its store).

    A source that logs in (Bluesky) offers `keep_session(keeper)`; `load()` is None when nothing
    was kept, `save(None)` forgets it.
    """

    def load(self) -> str | None: ...

    def save(self, token: str | None) -> None: ...


def load_cursor(cursor: str | None) -> dict[str, Any]:
    """A source's JSON cursor; an unreadable one (hand-edited, older release) starts afresh."""
    if not cursor:
        return {}
    try:
        value = json.loads(cursor)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def dump_cursor(value: Mapping[str, Any]) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def watch_fields(watch: Watch) -> dict[str, str]:
    """The mention keys every source fills from the watch that found it."""
    return {"watch": watch.id, "watch_kind": watch.kind}


def bounded_seen(seen: Mapping[str, float], *, floor_ts: float | None = None, cap: int = 5000) -> dict[str, float]:
    """A seen-id set (id -> epoch seconds) pruned to what can still come back, newest kept."""
    items = [(k, t) for k, t in seen.items() if floor_ts is None or t >= floor_ts]
    if len(items) > cap:
        items = sorted(items, key=lambda kv: kv[1])[-cap:]
    return dict(items)
