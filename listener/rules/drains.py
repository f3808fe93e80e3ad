"""How long a window can drain before its rule could hold: which departure is worth looking at.

A group with nothing open is looked at again when a mention leaves its window, because a
leaving mention can make some conditions true (a share rises as other mentions leave, a mean
falls, a count drops under a `<=` bound). Most departures cannot: if 30 % of a window is
negative, a `share_negative >= 0.6` rule needs at least half the window to leave first, and a
spike rule's count only falls until its baseline moves. For each rule this module compiles a
bound on how many of the oldest mentions must leave before the verdict could hold; the engine
sets the group's timer at that departure instead of the next one. The bound is a lower bound
(each departure is assumed to be the most helpful mention the window could hold), so a timer
never lands after a departure at which the rule would have fired: alerts, their times and
every count stay as they were, with far fewer timers.
"""

from __future__ import annotations

import math
from typing import Callable

from listener.rules.baseline import BaselineValue, usable_mean
from listener.rules.model import BaselineRule, Condition, SentimentShiftRule, SpikeRule, ThresholdRule
from listener.rules.state import GroupState

NEVER = math.inf
# Margin for rounding (metrics are compared rounded to 4 places): it only makes a bound smaller,
# i.e. a group is looked at a little earlier than it must be.
EPS = 1e-3

Bound = Callable[[GroupState], float]


def condition_bound(c: Condition) -> Bound:
    """How many of the oldest mentions must leave, at least, before `c` could hold (0: it may hold now).

    Assumes the worst case for each departure: the mention that helps `c` most leaves first.
    """
    metric, op, b = c.metric, c.op, c.bound
    if op in ("==", "!="):
        return lambda s: 0.0  # not monotone in anything useful: look at every departure
    rising = op in (">=", ">")
    if metric in ("count", "unique_authors", "flagged"):
        size = _size(metric)
        if rising:  # departures only lower these
            return lambda s: 0.0 if c.holds(size(s)) else NEVER
        # each departure lowers the value by at most one
        return lambda s: max(0.0, size(s) - b - 1)
    if metric == "mean_compound":
        if rising:  # the lowest compound (-1) leaves first
            t = b - EPS
            if t <= -1:
                return lambda s: 0.0
            return lambda s: max(0.0, (t * len(s.window) - s.sum_e4 / 10000) / (1 + t))
        t = b + EPS
        return lambda s: _to_mean_at_most(s, t)
    part = _part(metric)
    if rising:  # share = part / n rises fastest when only the others leave
        t = b - EPS
        if t <= 0:
            return lambda s: 0.0
        return lambda s: max(0.0, len(s.window) - part(s) / t)
    t = b + EPS  # falls fastest when only the counted ones leave
    if t >= 1:
        return lambda s: 0.0
    return lambda s: max(0.0, (part(s) - t * len(s.window)) / (1 - t))


def compile_first_look(rule: object, baseline_of: Callable[[GroupState, float, float | None], BaselineValue] | None,
                       width_s: float) -> Callable[[GroupState, float, float | None], float] | None:
    """For a window rule: when a group with nothing open must next be looked at, if nothing arrives:
    the first departure from its window that could make the rule hold (NEVER: none could).

    None when every departure must be looked at (the rule kind has no bound). `baseline_of(state,
    now, first_ts)` gives a spike or shift rule's baseline, which is computed once per history
    bucket of `width_s`: the first departure in a later bucket is always looked at.
    """
    if isinstance(rule, ThresholdRule):
        window_s = rule.window
        bounds = [condition_bound(c) for c in rule.conditions]
        pick = max if rule.combine == "all" else min
        if len(bounds) == 1:
            only = bounds[0]
            return lambda s, now, first_ts: _departure(s, only(s), window_s)
        return lambda s, now, first_ts: _departure(s, pick([bound(s) for bound in bounds]), window_s)
    if not isinstance(rule, BaselineRule) or baseline_of is None:
        return None
    window_s = rule.window
    if isinstance(rule, SpikeRule):
        # Departures only lower the count: only a new baseline (or readiness) can make it hold.
        return lambda s, now, first_ts: _next_bucket(s, now, window_s, width_s)
    if isinstance(rule, SentimentShiftRule):
        drop, min_baseline = rule.drop, rule.min_baseline_count

        def shift_first(s: GroupState, now: float, first_ts: float | None) -> float:
            next_bucket = _next_bucket(s, now, window_s, width_s)
            mean = usable_mean(baseline_of(s, now, first_ts), min_baseline)
            if mean is None:
                return next_bucket  # quiet for lack of history until the baseline is looked at again
            return min(shift_departure(s, mean, drop, window_s), next_bucket)

        return shift_first
    return None


def shift_departure(s: GroupState, mean: float, drop: float, window_s: float) -> float:
    """For a sentiment-shift rule whose baseline mean is `mean`: the first departure from the window
    that could bring its mean down to the baseline less `drop` (where the rule holds)."""
    return _departure(s, _to_mean_at_most(s, mean - drop + EPS), window_s)


def _to_mean_at_most(s: GroupState, t: float) -> float:
    """Departures needed before the window's mean could fall to `t`: the highest compounds (+1) leave first."""
    return 0.0 if t >= 1 else max(0.0, (s.sum_e4 / 10000 - t * len(s.window)) / (1 - t))


def _departure(s: GroupState, k: float, window_s: float) -> float:
    """When the k-th oldest mention leaves the window (k a lower bound, maybe fractional; at least the next)."""
    if k == NEVER:
        return NEVER
    w = s.window
    index = max(0, math.floor(k) - 1)
    return w[index].ts + window_s if index < len(w) else NEVER


def _next_bucket(s: GroupState, now: float, window_s: float, width_s: float) -> float:
    """The first departure from the window in a later history bucket than `now` (remembered per bucket)."""
    bucket = now // width_s
    cached = s.bucket_look
    if cached is not None and cached[0] == bucket:
        return cached[1]
    w = s.window
    lo, hi = 0, len(w)
    while lo < hi:  # departure times rise with the index
        mid = (lo + hi) // 2
        if (w[mid].ts + window_s) // width_s > bucket:
            hi = mid
        else:
            lo = mid + 1
    if lo == len(w):
        return NEVER  # not remembered: the next mention to arrive will leave in a later bucket
    due = w[lo].ts + window_s
    s.bucket_look = (bucket, due)
    return due


def _size(metric: str) -> Callable[[GroupState], int]:
    if metric == "count":
        return lambda s: len(s.window)
    if metric == "unique_authors":
        return lambda s: s.unique_authors()
    return lambda s: s.n_flag


def _part(metric: str) -> Callable[[GroupState], int]:
    """The numerator of a share metric."""
    if metric == "share_negative":
        return lambda s: s.n_neg
    if metric == "share_positive":
        return lambda s: s.n_pos
    if metric == "share_neutral":
        return lambda s: len(s.window) - s.n_neg - s.n_pos
    return lambda s: s.n_flag
