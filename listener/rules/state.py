"""Per-rule, per-group state of the engine: sliding windows with running sums, episodes, health."""

from __future__ import annotations

import bisect
import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from listener.mention import Mention
from listener.rules.baseline import History

NEG, POS = -0.05, 0.05
MAX_SAMPLES = 5
KEPT_SAMPLES = MAX_SAMPLES * 4  # a match episode keeps this many, to pick the alert's examples from


@dataclass(slots=True)
class Episode:
    id: str
    start_ts: float
    seq: int = 1
    severity: str = "medium"
    matches: int = 0  # match rules: mentions in this episode
    samples: list[Mention] = field(default_factory=list)  # match rules: newest first
    last_match_ts: float = 0.0
    pending_update: bool = False
    authors: set[str] = field(default_factory=set)  # match rules: distinct authors (bounded)
    resolve_due: float = -math.inf  # match rules: when the episode resolves without another match
    last_title: str | None = None  # the title of the last firing message, to name the resolution by

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "start_ts": self.start_ts, "seq": self.seq, "severity": self.severity,
                "matches": self.matches, "last_match_ts": self.last_match_ts,
                "pending_update": self.pending_update, "authors": sorted(self.authors),
                "resolve_due": self.resolve_due if math.isfinite(self.resolve_due) else None,
                "last_title": self.last_title,
                # All it keeps: a restarted daemon picks the same examples and reports the same mean.
                "samples": [m.to_dict() for m in self.samples[:KEPT_SAMPLES]]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Episode:
        due = data.get("resolve_due")
        return cls(id=data["id"], start_ts=data["start_ts"], seq=data["seq"], severity=data["severity"],
                   matches=data["matches"], last_match_ts=data["last_match_ts"],
                   pending_update=data["pending_update"], authors=set(data.get("authors", ())),
                   resolve_due=-math.inf if due is None else float(due), last_title=data.get("last_title"),
                   samples=[Mention.from_dict(m) for m in data["samples"]])


def insert_late(window: deque[Mention] | list[Mention], m: Mention) -> int:
    """Put `m` into `window` in event-time order, after those at the same time; return where."""
    index = bisect.bisect_right([x.ts for x in window], m.ts)
    window.insert(index, m)
    return index


@dataclass(slots=True)
class GroupState:
    """One group of one rule. Window kinds use the window fields; flatline the health fields."""

    values: dict[str, str]
    window: deque[Mention] = field(default_factory=deque)
    # Parallel to `window`: passes the rule's flag filter (None: the rule has no flag).
    flags: deque[bool] | None = field(default_factory=deque)
    n_neg: int = 0
    n_pos: int = 0
    n_flag: int = 0
    sum_e4: int = 0  # compounds in the window, summed in ten-thousandths (exact: no drift, any order)
    # author -> mentions in the window, for rules that test unique_authors (None: counted when asked)
    authors: dict[str, int] | None = field(default_factory=dict)
    history: History | None = None
    episode: Episode | None = None
    quiet_until: float = -math.inf
    clear_since: float | None = None
    blocked: bool = False  # the condition held while the cooldown kept it quiet
    timer_due: float = math.inf  # the one pending timer of this group
    draining: bool = False  # waits in RuleRuntime.draining to be forgotten (it has no timer)
    base_bucket: int = -1  # baseline cache: the bucket of now and the history's version it was computed at
    base_version: int = -1
    base_value: Any = None
    bucket_look: tuple[float, float] | None = None  # (history bucket of now, first departure in a later one)
    last: Mention | None = None  # the newest mention seen, to name watch/platform once the window is empty
    # flatline: what the sources reported
    last_seen_ts: float = -math.inf
    first_fail_ts: float | None = None
    failed_polls: int = 0
    last_error: str | None = None

    def add(self, m: Mention, flagged: bool = False) -> None:
        self.last = m
        w = self.window
        ts = m.ts
        flags = self.flags
        if not w or ts >= w[-1].ts:
            w.append(m)
            if flags is not None:
                flags.append(flagged)
        else:  # a late mention: keep the window in event-time order
            index = insert_late(w, m)
            if flags is not None:
                flags.insert(index, flagged)
            self.bucket_look = None  # it may leave before the departure remembered there
        s = m.sentiment
        if s is not None:
            c = s.compound
            self.sum_e4 += s.compound_e4
            if c <= NEG:
                self.n_neg += 1
            elif c >= POS:
                self.n_pos += 1
        if flagged and flags is not None:
            self.n_flag += 1
        authors = self.authors
        if authors is not None:
            author = m.author
            if author:
                authors[author] = authors.get(author, 0) + 1

    def evict(self, until_ts: float) -> None:
        """Drop mentions at or before `until_ts`: the window is (now - window, now]."""
        w = self.window
        if not w or w[0].ts > until_ts:
            return
        if w[-1].ts <= until_ts:
            self._clear()  # the whole window leaves (a group about to be forgotten): no need to count down
            return
        flags = self.flags
        authors = self.authors
        while w and w[0].ts <= until_ts:
            m = w.popleft()
            if flags is not None and flags.popleft():
                self.n_flag -= 1
            s = m.sentiment
            if s is not None:
                c = s.compound
                self.sum_e4 -= s.compound_e4
                if c <= NEG:
                    self.n_neg -= 1
                elif c >= POS:
                    self.n_pos -= 1
            if authors is not None:
                author = m.author
                if author:
                    left = authors[author] - 1
                    if left:
                        authors[author] = left
                    else:
                        del authors[author]

    def unique_authors(self) -> int:
        """Distinct authors in the window (kept up to date, or counted now for rules that rarely ask)."""
        authors = self.authors
        if authors is not None:
            return len(authors)
        return len({m.author for m in self.window if m.author})

    def _clear(self) -> None:
        self.window.clear()
        if self.flags is not None:
            self.flags.clear()
        if self.authors is not None:
            self.authors.clear()
        self.n_neg = self.n_pos = self.n_flag = 0
        self.sum_e4 = 0

    def value(self, metric: str) -> float | None:
        """One window metric, exactly as `metrics()` gives it, without building the whole dict."""
        n = len(self.window)
        if metric == "count":
            return n
        if metric == "unique_authors":
            return self.unique_authors()
        if metric == "flagged":
            return self.n_flag
        if n == 0:
            return None if metric == "mean_compound" else 0.0
        if metric == "share_negative":
            return round(self.n_neg / n, 4)
        if metric == "share_positive":
            return round(self.n_pos / n, 4)
        if metric == "share_neutral":
            return round((n - self.n_neg - self.n_pos) / n, 4)
        if metric == "mean_compound":
            return round(self.sum_e4 / (n * 10000), 4)
        if metric == "share_flagged":
            return round(self.n_flag / n, 4)
        return None

    def metrics(self, with_flag: bool) -> dict[str, Any]:
        n = len(self.window)
        out: dict[str, Any]
        if n == 0:
            out = {"count": 0, "share_negative": 0.0, "share_positive": 0.0, "share_neutral": 0.0,
                   "mean_compound": None, "unique_authors": 0}
        else:
            out = {
                "count": n,
                "share_negative": round(self.n_neg / n, 4),
                "share_positive": round(self.n_pos / n, 4),
                "share_neutral": round((n - self.n_neg - self.n_pos) / n, 4),
                "mean_compound": round(self.sum_e4 / (n * 10000), 4),
                "unique_authors": self.unique_authors(),
            }
        if with_flag:
            out["flagged"] = self.n_flag
            out["share_flagged"] = round(self.n_flag / n, 4) if n else 0.0
        return out
