"""Baselines for spike and sentiment-shift rules: bucketed history, trailing and seasonal (median/MAD).

History is kept per group as counts and compound sums in buckets of a fixed width, so memory
is bounded by the baseline's span, not by the number of mentions. Seasonal baselines use the
median of the same hour-of-week window over past weeks, so one past spike does not poison them.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from itertools import repeat
from statistics import median

WEEK_S = 604800.0


def bucket_width_s(window_s: float) -> float:
    """Six buckets per window (at least a minute each): baselines are exact to a sixth of the window."""
    return max(60.0, window_s / 6.0)


@dataclass(slots=True)
class History:
    """Counts and compound sums per time bucket, oldest pruned first.

    Sums are in ten-thousandths (`Sentiment.compound_e4`), as integers: exact, so a baseline is the
    same whatever order its mentions came in (a restarted daemon refills it from the store).
    """

    width_s: float
    counts: dict[int, int] = field(default_factory=dict)
    sums: dict[int, int] = field(default_factory=dict)
    order: deque[int] = field(default_factory=deque)  # bucket indices in creation order, for pruning
    version: int = 0  # bumped when a bucket behind the live edge changes (a late mention)
    newest: int = -(2**62)

    def add(self, ts: float, compound_e4: int) -> None:
        b = int(ts // self.width_s)
        n = self.counts.get(b)
        if n is None:
            self.counts[b] = 1
            self.sums[b] = compound_e4
            self.order.append(b)
        else:
            self.counts[b] = n + 1
            self.sums[b] += compound_e4
        if b >= self.newest:
            self.newest = b
        else:
            self.version += 1

    def prune(self, before_ts: float) -> None:
        cutoff = int(before_ts // self.width_s)
        order = self.order
        while order and order[0] < cutoff:
            b = order.popleft()
            self.counts.pop(b, None)
            self.sums.pop(b, None)

    def __bool__(self) -> bool:
        return bool(self.counts)

    def span(self, start_ts: float, end_ts: float) -> tuple[int, int]:
        """Count and compound sum (in ten-thousandths) of the buckets covering [start_ts, end_ts)."""
        w = self.width_s
        lo, hi = int(start_ts // w), int(end_ts // w)
        counts, sums = self.counts, self.sums
        if hi - lo > len(counts):  # sparse history: walk what exists rather than every bucket
            n = 0
            s = 0
            for b, c in counts.items():
                if lo <= b < hi:
                    n += c
                    s += sums[b]
            return n, s
        buckets = range(lo, hi)  # (summed in C: this runs once per group and bucket of a baseline rule)
        return sum(map(counts.get, buckets, repeat(0))), sum(map(sums.get, buckets, repeat(0)))


@dataclass(frozen=True, slots=True)
class BaselineValue:
    """What a baseline says, or why it cannot say anything yet."""

    ready: bool
    count: float = 0.0  # expected mentions in a window
    mean: float | None = None  # usual mean compound
    mad: float | None = None  # seasonal: median absolute deviation of the weekly counts
    mean_mad: float | None = None  # seasonal: median absolute deviation of the weekly means
    mentions: int = 0  # mentions the baseline was computed from
    weeks: int = 0  # seasonal: weeks of history used
    reason: str = ""


def usable_mean(base: BaselineValue, min_mentions: int) -> float | None:
    """The usual mean a sentiment-shift rule compares with, or None while it cannot be used: the
    baseline is not ready, or was computed from fewer than `min_mentions` mentions."""
    return base.mean if base.ready and base.mentions >= min_mentions else None


def trailing(history: History, now_ts: float, window_s: float, period_s: float) -> BaselineValue:
    """The preceding `period_s` before the window, scaled to one window."""
    end = now_ts - window_s
    n, s = history.span(end - period_s, end)
    return BaselineValue(True, count=n * window_s / period_s, mean=(s / (n * 10000)) if n else None, mentions=n)


def seasonal(history: History, now_ts: float, window_s: float, weeks: int, min_weeks: int,
             history_start_ts: float) -> BaselineValue:
    """The same window one, two, ... `weeks` weeks ago: medians and MADs over the weeks covered."""
    counts: list[float] = []
    means: list[float] = []
    total = 0
    for k in range(1, weeks + 1):
        end = now_ts - k * WEEK_S
        if end - window_s < history_start_ts:
            break
        n, s = history.span(end - window_s, end)
        counts.append(float(n))
        total += n
        if n:
            means.append(s / (n * 10000))
    if len(counts) < min_weeks:
        return BaselineValue(False, weeks=len(counts),
                             reason=f"{len(counts)} of the {min_weeks} weeks of history it needs")
    mid = median(counts)
    mean_mid = median(means) if means else None
    return BaselineValue(
        True, count=mid, mean=mean_mid, mentions=total, weeks=len(counts),
        mad=median(abs(c - mid) for c in counts),
        mean_mad=median(abs(m - mean_mid) for m in means) if mean_mid is not None else None,
    )
