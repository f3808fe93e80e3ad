"""The normalised mention: one public post that a watch found, in one shape for every platform."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Mapping, Sequence

from listener.errors import MentionError

# The watches (and their kinds) that had found a post before another found it too, the first finder first.
Known = Sequence[tuple[str | None, str | None]]

REQUIRED = ("platform", "id", "text", "created_at")
WATCH_KINDS = ("account", "hashtag", "query", "post")
_KNOWN = frozenset(
    REQUIRED
    + ("url", "author", "lang", "watch", "watch_kind", "in_reply_to", "thread", "metrics", "sentiment")
)


@dataclass(frozen=True, slots=True)
class Sentiment:
    """VADER's four scores for one text."""

    compound: float
    pos: float
    neu: float
    neg: float
    # The compound in ten-thousandths (VADER's own precision): windows and baselines sum these as
    # integers, exactly, so a mean does not depend on the order mentions came and went.
    compound_e4: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "compound_e4", round(self.compound * 10000))

    @property
    def label(self) -> str:
        """VADER's own three classes, at its documented ±0.05 thresholds."""
        if self.compound >= 0.05:
            return "positive"
        if self.compound <= -0.05:
            return "negative"
        return "neutral"

    def to_dict(self) -> dict[str, float]:
        return {"compound": self.compound, "pos": self.pos, "neu": self.neu, "neg": self.neg}


@dataclass(frozen=True, slots=True)
class Mention:
    """One post, normalised. `ts` is `created_at` as epoch seconds, for cheap window arithmetic."""

    platform: str
    id: str
    text: str
    created_at: datetime
    ts: float
    url: str | None = None
    author: str | None = None
    lang: str | None = None
    watch: str | None = None
    watch_kind: str | None = None
    in_reply_to: str | None = None
    thread: str | None = None
    metrics: Mapping[str, Any] = field(default_factory=dict)
    extra: Mapping[str, Any] = field(default_factory=dict)
    sentiment: Sentiment | None = None

    @property
    def key(self) -> tuple[str, str]:
        return (self.platform, self.id)

    @property
    def compound(self) -> float:
        return self.sentiment.compound if self.sentiment is not None else 0.0

    def with_sentiment(self, sentiment: Sentiment | None) -> Mention:
        """This mention with its score: `dataclasses.replace(self, sentiment=...)`, at a third of the cost."""
        return type(self)(self.platform, self.id, self.text, self.created_at, self.ts, self.url, self.author,
                          self.lang, self.watch, self.watch_kind, self.in_reply_to, self.thread, self.metrics,
                          self.extra, sentiment)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Mention:
        """Validate one decoded JSON object; raise MentionError saying what is wrong."""
        if type(data) is dict:
            fast = _from_plain_dict(cls, data)
            if fast is not None:
                return fast
        return cls._from_dict_checked(data)

    @classmethod
    def _from_dict_checked(cls, data: Mapping[str, Any]) -> Mention:
        """`from_dict` for any input: every field checked in turn, so an error names the first problem."""
        if not isinstance(data, Mapping):
            raise MentionError(f"expected a JSON object, got {type(data).__name__}")
        missing = [k for k in REQUIRED if data.get(k) in (None, "")]
        if missing:
            raise MentionError(f"missing required field{'s' if len(missing) > 1 else ''}: {', '.join(missing)}")
        for name in ("platform", "id", "text"):
            if not isinstance(data[name], str):
                raise MentionError(f"field {name!r} must be a string")
        created_at = parse_time(data["created_at"], "created_at")
        optional: dict[str, str | None] = {}
        for name in ("url", "author", "lang", "watch", "watch_kind", "in_reply_to", "thread"):
            value = data.get(name)
            if value is not None and not isinstance(value, str):
                raise MentionError(f"field {name!r} must be a string or null")
            optional[name] = value or None
        if optional["watch_kind"] is not None and optional["watch_kind"] not in WATCH_KINDS:
            raise MentionError(
                f"field 'watch_kind' must be one of {', '.join(WATCH_KINDS)}, got {optional['watch_kind']!r}"
            )
        metrics = data.get("metrics") or {}
        if not isinstance(metrics, Mapping):
            raise MentionError("field 'metrics' must be an object")
        sentiment = None
        raw = data.get("sentiment")
        if isinstance(raw, Mapping):
            try:
                sentiment = Sentiment(*(float(raw[k]) for k in ("compound", "pos", "neu", "neg")))
            except (KeyError, TypeError, ValueError):
                raise MentionError("field 'sentiment' must hold compound, pos, neu and neg numbers") from None
        extra = {k: v for k, v in data.items() if k not in _KNOWN}
        return cls(
            platform=data["platform"],
            id=data["id"],
            text=data["text"],
            created_at=created_at,
            ts=created_at.timestamp(),
            metrics=dict(metrics),
            extra=extra,
            sentiment=sentiment,
            **optional,
        )

    @classmethod
    def from_json(cls, line: str) -> Mention:
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            raise MentionError(f"not valid JSON: {exc.msg} at column {exc.colno}") from None
        return cls.from_dict(data)

    def to_dict(self) -> dict[str, Any]:
        """The mention in the contract's JSON shape (unknown keys kept, sentiment when scored)."""
        out: dict[str, Any] = dict(self.extra)
        out.update(
            platform=self.platform,
            id=self.id,
            url=self.url,
            author=self.author,
            text=self.text,
            lang=self.lang,
            created_at=format_time(self.created_at),
            watch=self.watch,
            watch_kind=self.watch_kind,
            in_reply_to=self.in_reply_to,
            thread=self.thread,
            metrics=dict(self.metrics),
        )
        if self.sentiment is not None:
            out["sentiment"] = self.sentiment.to_dict()
        return out


_OPTIONAL = ("url", "author", "lang", "watch", "watch_kind", "in_reply_to", "thread")


def _from_plain_dict(cls: type[Mention], data: dict[str, Any]) -> Mention | None:
    """The common case of `from_dict`, decided in few steps: required fields non-empty strings,
    optional ones strings or null, a known watch kind, metrics an object (or absent), no sentiment.
    None for anything else, which the field-by-field path then accepts or explains."""
    get = data.get
    platform, mention_id, text, created = get("platform"), get("id"), get("text"), get("created_at")
    if not (type(platform) is str and platform and type(mention_id) is str and mention_id
            and type(text) is str and text and type(created) is str and created):
        return None
    url, author, lang, watch, watch_kind, in_reply_to, thread = (get(name) for name in _OPTIONAL)
    for value in (url, author, lang, watch, watch_kind, in_reply_to, thread):
        if value is not None and type(value) is not str:
            return None
    if watch_kind and watch_kind not in WATCH_KINDS:
        return None
    metrics = get("metrics") or {}
    if type(metrics) is not dict or get("sentiment") is not None:
        return None
    created_at = parse_time(created, "created_at")
    extra = {} if _KNOWN.issuperset(data) else {k: v for k, v in data.items() if k not in _KNOWN}
    return cls(platform, mention_id, text, created_at, created_at.timestamp(), url or None, author or None,
               lang or None, watch or None, watch_kind or None, in_reply_to or None, thread or None,
               dict(metrics), extra, None)


def parse_time(value: Any, name: str = "timestamp") -> datetime:
    """An ISO 8601 timestamp with a zone (`Z` or an offset) as an aware UTC datetime."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if not math.isfinite(value):
            raise MentionError(f"field {name!r} is not a finite number")
        return datetime.fromtimestamp(value, tz=timezone.utc)
    if not isinstance(value, str):
        raise MentionError(f"field {name!r} must be an ISO 8601 string")
    text = value.strip()
    if text.endswith(("z", "Z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise MentionError(f"field {name!r} is not an ISO 8601 timestamp: {value!r}") from None
    if parsed.tzinfo is None:
        raise MentionError(f"field {name!r} has no time zone (add Z for UTC): {value!r}")
    return parsed.astimezone(timezone.utc)


def format_time(moment: datetime) -> str:
    """UTC, second precision unless there is a fraction, with a Z: the contract's timestamp form."""
    if moment.tzinfo is not timezone.utc:
        moment = moment.astimezone(timezone.utc)
    spec = "seconds" if moment.microsecond == 0 else "milliseconds"
    return moment.isoformat(timespec=spec).replace("+00:00", "Z")


def from_ts(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, tz=timezone.utc)
