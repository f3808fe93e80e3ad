"""A compiled rule with its per-group state, what each kind measures (verdicts, baselines), and
when a group must next be looked at.

Pure functions of a rule's runtime, a group's state and the engine's clock; the engine
decides what to do with a verdict (open, escalate or resolve an episode).
"""

from __future__ import annotations

import math
import operator
from collections import deque
from typing import Any, Callable, Final, Iterable, Sequence

from listener.duration import format_span
from listener.mention import Mention
from listener.rules.alerting import Check, check as _check, num as _num
from listener.rules.baseline import BaselineValue, History, bucket_width_s, seasonal, trailing, usable_mean
from listener.rules.drains import compile_first_look
from listener.rules.filters import (
    Explainer, Predicate, RegexBank, choose_need, compile_explainer, compile_free, compile_match, compile_poll_match,
    need_choices, split_free, split_place, take_all,
)
from listener.rules.model import (
    BaselineRule, Condition, FlatlineRule, RuleBase, SentimentShiftRule, SpikeRule, ThresholdRule, WindowRule,
)
from listener.rules.quiet import Quiet, compile_quiet
from listener.rules.state import GroupState, insert_late
from listener.rules.text import TextFeatures, lazy_features

_UNSET = object()
NEED_SAMPLE = 2000  # mentions a text rule counts its needs on before keeping the rarest (see learn_need)
RISING_METRICS = frozenset({"count", "flagged", "unique_authors"})  # only fall as mentions leave a window


class RuleRuntime:
    """One rule, compiled, with its per-group state."""

    def __init__(self, rule: RuleBase, bank: RegexBank | None = None) -> None:
        """`bank`: where the rule's regexes go, shared by the rules of one engine (see RegexBank)."""
        self.rule = rule
        self.kind: str = rule.kind  # type: ignore[attr-defined]
        bank = bank if bank is not None else RegexBank()
        # The match block in two: where a mention was found (the engine asks once per place which
        # rules take mentions from there) and the rest, asked of each mention from such a place.
        self.where, self.rest = split_place(rule.match, bank)
        self.takes_all = self.rest is take_all
        self.predicate: Predicate = _both(self.where, self.rest)
        # Words (or regex hits) a text must have for the predicate to pass: tested first, in one step.
        # Where there are several ways to say it, the engine counts on its first mentions which
        # rules out most, and keeps that (`learn_need`): the same verdicts, fewer filters run.
        # A rule that also has free branches (a classifier) is ruled out by the words of the others,
        # and then asks only its free branches (`split_free`).
        split = split_free(rule.match, bank)
        self._need_slots = need_choices(split[0] if split is not None else rule.match, bank)
        self.free: Predicate | None = compile_free(split[1], bank) if split is not None else None
        need = None if self._need_slots is None else choose_need(self._need_slots)
        self.need_words: frozenset[str] | None = None if need is None else need[0]
        self.need_regexes: frozenset[int] = frozenset() if need is None else need[1]
        self.regex_hits = bank.hits
        choices = self._need_slots is not None and any(len(slot) > 1 for slot in self._need_slots)
        self.need_samples = NEED_SAMPLE if choices else 0  # mentions still to count before choosing
        self._need_passes = [[0] * len(slot) for slot in self._need_slots or ()]
        flag = getattr(rule, "flag", None)
        self.flag: Predicate | None = compile_match(flag, bank) if flag is not None else None
        self.poll_match = compile_poll_match(rule.match) if isinstance(rule, FlatlineRule) else None
        self.flatline = isinstance(rule, FlatlineRule)
        self.watches_silence = self.flatline and rule.silent_for is not None  # type: ignore[attr-defined]
        self.bucket_s = bucket_width_s(rule.window) if isinstance(rule, BaselineRule) else 0.0
        self.window_s: float = rule.window if isinstance(rule, WindowRule) else 0.0
        self.groups: dict[str, GroupState] = {}
        # Groups whose window can only drain with nothing able to fire: they have no timer, and
        # wait here, in order of when their window ends, to be forgotten (see Engine._sweep).
        self.draining: deque[tuple[float, str, GroupState]] = deque()
        self.sweep_due = math.inf
        # A threshold rule that needs at least `fires_from` mentions in a window (count >= 20, flagged
        # >= 10, ...) cannot fire on fewer, so a group with fewer keeps only its mentions, in `small`
        # (event-time order), with no sums, flags, timer or verdicts: most groups of such a rule (one
        # author, one thread) never get there. At `fires_from` it becomes a GroupState (`promote`).
        # Small groups are kept in two generations, to be forgotten without a look at each: the
        # current one takes the groups that get a mention; every window (`rotate_small`) it becomes
        # the previous one and the previous one is dropped, since nothing in it has had a mention
        # for a whole window. A group of the previous generation that gets one moves back.
        self.fires_from = _fires_from(rule)
        # (A small group is a list: made for most mentions of a rule grouped by author, and cheaper to
        # make than a deque; it never holds more than `fires_from`, so dropping its head is cheap too.)
        self.small: dict[str, list[Mention]] | None = {} if self.fires_from else None
        self.small_old: dict[str, list[Mention]] = {}
        self.small_due = math.inf  # the next rotation (none while no small group is held)
        self.small_touched = -math.inf  # the clock when a small group last took a mention
        # Conditions that mentions leaving the window can only make false ("count >= 20"): while one
        # of them is false, the window need not be watched as it drains (see Engine._needs).
        conditions = getattr(rule, "conditions", [])
        self.rising = [c for c in conditions if c.metric in RISING_METRICS and c.op in (">=", ">")]
        self.all_rising = len(self.rising) == len(conditions)
        self.combine_all = getattr(rule, "combine", "all") == "all"
        # Whether its windows keep a running count of authors: only when a condition tests it.
        tested = [*conditions, *(c for step in rule.escalate for c in step.conditions)]
        self.counts_authors = any(c.metric == "unique_authors" for c in tested)
        self._explainer: object = _UNSET
        self.unready = 0  # mentions that came in with the volume to look at, but too little history
        self.unready_reason = ""
        # Compiled once: the hot path calls these for every mention and every timer.
        self.holds_now: Callable[[GroupState, float, float | None], bool] = _compile_holds_now(self)
        self.cannot_rise: Callable[[GroupState], bool] = _compile_cannot_rise(self)
        # For a group with nothing open: the first of its window's mentions whose departure could make
        # the rule hold (see drains.py); the engine times the group to that departure, not the next.
        self.first_look: Callable[[GroupState, float, float | None], float] | None = compile_first_look(
            rule, lambda state, now, first_ts: baseline(self, state, now, first_ts), self.bucket_s)
        # For a baseline rule: "does not hold, and its timer stands", in one step (quiet.py).
        self.quiet: Quiet | None = compile_quiet(
            rule, self.holds_now, lambda state, now, first_ts: baseline(self, state, now, first_ts), self.bucket_s)
        self.key_of: Callable[[Mention], str] | None = None  # when every mention falls in exactly one group
        self.key_values: Callable[[Mention], dict[str, str]] = lambda m: {}
        single = _compile_key(rule)
        if single is not None:
            self.key_of, self.key_values = single

    def place_key(self, m: Mention) -> str | None:
        """The group key of every mention found where `m` was, if the rule groups by place alone
        (watch, platform, or one group for all); None when it depends on the mention."""
        by = self.rule.group_by
        if self.key_of is None or (not by and self.kind == "match") or not set(by) <= {"watch", "platform"}:
            return None
        return self.key_of(m)

    def learn_need(self, words: frozenset[str], text: str) -> frozenset[str]:
        """Count which of the rule's needs `text` meets; after NEED_SAMPLE mentions, keep the rarest.
        Returns the need words now in force."""
        assert self._need_slots is not None
        hits: frozenset[int] | None = None
        for slot, passes in zip(self._need_slots, self._need_passes):
            for i, (need_words, need_regexes) in enumerate(slot):
                if not need_words.isdisjoint(words):
                    passes[i] += 1
                elif need_regexes:
                    if hits is None:
                        hits = self.regex_hits(text)
                    if not need_regexes.isdisjoint(hits):
                        passes[i] += 1
        self.need_samples -= 1
        if self.need_samples == 0:  # each slot's alternative met least often (ties: the first, best ranked)
            picks = [passes.index(min(passes)) for passes in self._need_passes]
            self.need_words, self.need_regexes = choose_need(self._need_slots, picks)
        assert self.need_words is not None
        return self.need_words

    @property
    def explainer(self) -> Explainer | None:
        """What in a sample's text made it count (for alerts; compiled at the first alert)."""
        if self._explainer is _UNSET:
            self._explainer = compile_explainer(self.rule.match, getattr(self.rule, "flag", None))
        return self._explainer  # type: ignore[return-value]

    def clear_state(self) -> None:
        """Forget every group (windows, episodes, cooldowns); the rule itself stays compiled."""
        self.groups = {}
        self.small = {} if self.fires_from else None
        self.small_old = {}
        self.small_due = math.inf
        self.small_touched = -math.inf
        self.draining = deque()
        self.sweep_due = math.inf

    def group(self, key: str, values: dict[str, str], now_ts: float) -> GroupState:
        """The group under `key`, made with `values` if it is new, or made whole if it is small."""
        state = self.groups.get(key)
        if state is None:
            if self.small is not None and (key in self.small or key in self.small_old):
                return self.promote(key, values, now_ts)
            state = self.groups[key] = self.new_group(values, now_ts)
        return state

    def take_small(self, key: str, m: Mention, now_ts: float) -> bool:
        """Add `m` (in its window at `now_ts`) to the small group under `key`, made if it is new; False
        when `m` would bring it to `fires_from` mentions: then it is left out, for the caller to
        `promote` the group and feed it. The caller lowers the engine's sweep time to `sweep_due`."""
        small = self.small
        assert small is not None
        self.small_touched = now_ts
        if self.small_due == math.inf:  # the first small group held: rotate in a window, to forget it
            self.small_due = now_ts + self.window_s
            if self.small_due < self.sweep_due:
                self.sweep_due = self.small_due
        w = small.get(key)
        if w is None:
            w = self.small_old.pop(key, None)
            if w is None:
                small[key] = [m]
                return True
            small[key] = w  # back into the current generation
        start = now_ts - self.window_s
        if w and w[0].ts <= start:  # what has left the window, as GroupState.evict drops it
            left = 1
            while left < len(w) and w[left].ts <= start:
                left += 1
            del w[:left]
        if len(w) + 1 >= self.fires_from:
            return False
        if not w or m.ts >= w[-1].ts:
            w.append(m)
        else:  # a late mention: in event-time order (as GroupState.add)
            insert_late(w, m)
        return True

    def promote(self, key: str, values: dict[str, str], now_ts: float) -> GroupState:
        """Make the small group under `key` a GroupState, its sums and flags counted now: the state
        it would have had, had it been one from its first mention (flags are pure, sums exact)."""
        assert self.small is not None
        window = self.small.pop(key, None)
        if window is None:
            window = self.small_old.pop(key)
        state = self.groups[key] = self.state_of(window, values, now_ts)
        return state

    def state_of(self, window: Iterable[Mention], values: dict[str, str], now_ts: float) -> GroupState:
        """A new group holding `window` (mentions in event-time order)."""
        state = self.new_group(values, now_ts)
        flag = self.flag
        for m in window:
            state.add(m, flag(m, lazy_features(m)) if flag is not None else False)
        return state

    def rotate_small(self, now_ts: float) -> None:
        """Drop the previous generation of small groups (none of them has had a mention for a window)
        and start a new one; drop both once nothing held has had a mention for a window."""
        if not self.small or now_ts >= self.small_touched + self.window_s:
            self.small, self.small_old, self.small_due = {}, {}, math.inf
        else:
            self.small_old, self.small = self.small, {}
            self.small_due = now_ts + self.window_s

    def windows(self) -> dict[str, Sequence[Mention]]:
        """The window of every group held, whole or small (for inspection and tests)."""
        out: dict[str, Sequence[Mention]] = {key: state.window for key, state in self.groups.items()}
        out.update(self.small_old)
        out.update(self.small or {})
        return out

    def new_group(self, values: dict[str, str], now_ts: float) -> GroupState:
        # No flag: no parallel deque to keep. No condition on unique_authors: alerts count the
        # window's authors when they need the number. (Built only when wanted: this runs per new group.)
        return GroupState(values, flags=deque() if self.flag is not None else None,
                          authors={} if self.counts_authors else None,
                          history=History(self.bucket_s) if self.bucket_s else None, last_seen_ts=now_ts)

    def group_keys(self, m: Mention, feats: Callable[[], TextFeatures]) -> list[tuple[str, dict[str, str]]]:
        """The groups a matching mention belongs to: (key, values) each (see also `key_of`)."""
        if self.key_of is not None:
            return [(self.key_of(m), self.key_values(m))]
        combos: list[dict[str, str]] = [{}]
        for name in self.rule.group_by:
            if name == "hashtag":
                tags = feats().hashtags
                if not tags:
                    return []  # a mention without hashtags is in no hashtag group
                combos = [dict(c, hashtag=t) for c in combos for t in tags]
                continue
            value = _group_value(m, name)
            for c in combos:
                c[name] = value
        return [(",".join(f"{k}={v}" for k, v in c.items()), c) for c in combos]

    def poll_group(self, watch: str | None, platform: str) -> tuple[str, dict[str, str]]:
        values: dict[str, str] = {name: (watch or "-") if name == "watch" else platform
                                  for name in self.rule.group_by}
        return (",".join(f"{k}={v}" for k, v in values.items()) or "all"), values


def cannot_rise(rt: RuleRuntime, state: GroupState) -> bool:
    """True when mentions leaving the window cannot make the condition hold."""
    rule = rt.rule
    n = len(state.window)
    if isinstance(rule, (SpikeRule, SentimentShiftRule)):
        return n < rule.min_count
    if rt.combine_all:
        value = state.value
        return any(not c.holds(value(c.metric)) for c in rt.rising)
    return rt.all_rising


def may_hold(rt: RuleRuntime, state: GroupState, now: float, first_ts: float | None) -> bool:
    """False only when the condition surely does not hold (a cheap necessary test)."""
    rule = rt.rule
    if isinstance(rule, ThresholdRule):
        value = state.value
        if rule.combine == "all":
            return all(c.holds(value(c.metric)) for c in rule.conditions)
        return any(c.holds(value(c.metric)) for c in rule.conditions)
    if isinstance(rule, SpikeRule):
        n = len(state.window)
        if n < rule.min_count:
            return False
        base = baseline(rt, state, now, first_ts)
        return not base.ready or n >= rule.factor * base.count
    if isinstance(rule, SentimentShiftRule):
        return len(state.window) >= rule.min_count
    if isinstance(rule, FlatlineRule):
        return ((rule.silent_for is not None and now - state.last_seen_ts >= rule.silent_for)
                or (rule.failing_for is not None and state.first_fail_ts is not None
                    and now - state.first_fail_ts >= rule.failing_for))
    return True

def verdict(rt: RuleRuntime, state: GroupState, now: float,
            first_ts: float | None) -> tuple[bool, dict[str, Any], list[Check]]:
    rule = rt.rule
    if isinstance(rule, FlatlineRule):
        return _flatline_verdict(rule, state, now)
    metrics = state.metrics(rt.flag is not None)
    if isinstance(rule, ThresholdRule):
        checks = [_check(c.metric, c.op, c.bound, metrics.get(c.metric)) for c in rule.conditions]
        met = [c["met"] for c in checks]
        return (all(met) if rule.combine == "all" else any(met)), metrics, checks
    assert isinstance(rule, BaselineRule)
    base = baseline(rt, state, now, first_ts)
    count = metrics["count"]
    if isinstance(rule, SpikeRule):
        if not base.ready:
            return _unready(rt, base.reason, count >= rule.min_count), metrics, []
        metrics["baseline"] = round(base.count, 3)
        metrics["ratio"] = round(count / base.count, 3) if base.count > 0 else None
        checks = [
            _check("count", ">=", rule.min_count, count, "min_count"),
            _check("count", ">=", rule.factor * base.count, count,
                   f"{rule.factor:g}x the baseline {base.count:.1f}, {rule.baseline.describe()}"),
        ]
        if base.mad is not None:
            metrics["baseline_mad"] = round(base.mad, 3)
            if rule.min_mads > 0:
                checks.append(_check("count", ">=", base.count + rule.min_mads * base.mad, count,
                                     f"baseline + {rule.min_mads:g} MAD ({base.mad:.1f})"))
        return all(c["met"] for c in checks), metrics, checks
    assert isinstance(rule, SentimentShiftRule)
    usual = usable_mean(base, rule.min_baseline_count)
    if usual is None:
        reason = shift_unready_reason(base, rule.min_baseline_count)
        return _unready(rt, reason, count >= rule.min_count), metrics, []
    mean = metrics["mean_compound"]
    drop = None if mean is None else round(usual - mean, 4)
    metrics["baseline"] = round(usual, 4)
    metrics["drop"] = drop
    if base.mean_mad is not None:
        metrics["baseline_mad"] = round(base.mean_mad, 4)
    checks = [
        _check("count", ">=", rule.min_count, count, "min_count"),
        _check("drop", ">=", rule.drop, drop,
               f"mean {_num(mean)} against the usual {usual:+.2f}, {rule.baseline.describe()}"),
    ]
    return all(c["met"] for c in checks), metrics, checks

def _unready(rt: RuleRuntime, reason: str, would_look: bool) -> bool:
    if would_look:
        rt.unready += 1
        rt.unready_reason = reason
    return False

def baseline(rt: RuleRuntime, state: GroupState, now: float, first_ts: float | None) -> BaselineValue:
    history = state.history
    assert history is not None
    bucket = int(now // history.width_s)
    if state.base_bucket == bucket and state.base_version == history.version and state.base_value is not None:
        return state.base_value  # type: ignore[no-any-return]
    rule = rt.rule
    assert isinstance(rule, BaselineRule)
    span = rule.baseline.span_s(rule.window)
    history.prune(now - span - history.width_s)
    start = first_ts if first_ts is not None else now
    if rule.baseline.type == "trailing":
        need = rule.window + rule.baseline.period
        if now - start < need:
            value = BaselineValue(False, reason=f"{format_span(now - start)} of the "
                                                f"{format_span(need)} of history it needs")
        else:
            value = trailing(history, now, rule.window, rule.baseline.period)
    else:
        value = seasonal(history, now, rule.window, rule.baseline.weeks, rule.baseline.min_weeks, start)
    state.base_bucket, state.base_version, state.base_value = bucket, history.version, value
    return value

def forgettable(rt: RuleRuntime, state: GroupState, now: float) -> bool:
    """Whether a group holds nothing that still matters at `now` (no window, episode, cooldown, history)."""
    if rt.kind == "flatline" or state.episode is not None or state.window:
        return False
    if state.quiet_until > now:
        return False
    history = state.history
    if history:
        rule = rt.rule
        assert isinstance(rule, BaselineRule) and history is not None
        history.prune(now - rule.baseline.span_s(rule.window) - rt.bucket_s)
        return not history
    return True


def next_look(rt: RuleRuntime, state: GroupState, now: float) -> float:
    """When a group must next be looked at, if nothing arrives meanwhile (math.inf: never).

    A window with nothing open is timed more finely by the engine (see drains.py).
    """
    rule = rt.rule
    ep = state.episode
    due = math.inf
    if rt.kind == "match":
        if ep is not None:
            due = ep.resolve_due
            if ep.pending_update:
                due = min(due, state.quiet_until)
        elif state.quiet_until > now:
            due = state.quiet_until  # to forget the group once its cooldown is over
        return due
    if state.window:
        window_s = rt.window_s
        if ep is None and not state.blocked and rt.cannot_rise(state):
            due = state.window[-1].ts + window_s  # only to forget the group once its window is empty
        else:
            due = state.window[0].ts + window_s  # the next mention to leave the window
    elif isinstance(rule, FlatlineRule):
        if rule.silent_for is not None and state.last_seen_ts + rule.silent_for > now:
            due = state.last_seen_ts + rule.silent_for
        if rule.failing_for is not None and state.first_fail_ts is not None \
                and state.first_fail_ts + rule.failing_for > now:
            due = min(due, state.first_fail_ts + rule.failing_for)
    elif state.history and ep is None:
        assert isinstance(rule, BaselineRule)
        due = (state.history.newest + 1) * rt.bucket_s + rule.baseline.span_s(rule.window)  # to forget it
    if ep is not None and state.clear_since is not None:
        due = min(due, state.clear_since + rule.resolve_after)
    if ep is None and (state.blocked or (due == math.inf and state.quiet_until > now)):
        due = min(due, state.quiet_until)  # blocked: it may fire then; else only to forget the group
    return due


def _flatline_verdict(rule: FlatlineRule, state: GroupState, now: float) -> tuple[bool, dict[str, Any], list[Check]]:
    silent = round(max(now - state.last_seen_ts, 0.0), 3)
    failing = round(now - state.first_fail_ts, 3) if state.first_fail_ts is not None else 0.0
    metrics: dict[str, Any] = {"count": 0, "silent_s": silent, "failing_s": failing,
                               "failed_polls": state.failed_polls}
    checks: list[Check] = []
    if rule.silent_for is not None:
        checks.append(_check("silent_s", ">=", rule.silent_for, silent, "no matching mention"))
    if rule.failing_for is not None:
        checks.append(_check("failing_s", ">=", rule.failing_for, failing if state.failed_polls else None,
                             "every poll failed"))
    return any(c["met"] for c in checks), metrics, checks


def _compile_key(rule: RuleBase) -> tuple[Callable[[Mention], str], Callable[[Mention], dict[str, str]]] | None:
    """For a rule whose mentions each fall in one group: the group key of a mention, and its values.

    The key is the same string `group_keys` builds in general; the values are built only when a
    group is created. None for rules grouped by hashtag (a mention may have several, or none).
    """
    by = rule.group_by
    if not by:
        if rule.kind == "match":  # type: ignore[attr-defined]
            # Without group_by every matching mention is its own episode.
            return (lambda m: "mention=" + m.platform + ":" + m.id), (lambda m: {"mention": f"{m.platform}:{m.id}"})
        return (lambda m: "all"), (lambda m: {})
    if "hashtag" in by:
        return None
    names = tuple(by)
    values_of: Callable[[Mention], dict[str, str]] = lambda m: {name: _group_value(m, name) for name in names}
    if len(names) == 1:
        return _key_part(names[0], names[0] + "="), values_of
    if len(names) == 2:
        first, second = _key_part(names[0], names[0] + "="), _key_part(names[1], "," + names[1] + "=")
        return (lambda m: first(m) + second(m)), values_of
    return (lambda m: ",".join([f"{name}={_group_value(m, name)}" for name in names])), values_of


def _key_part(name: str, prefix: str) -> Callable[[Mention], str]:
    """`prefix` and the mention's value of one group_by field, as one closure."""
    if name == "thread":
        return lambda m: prefix + (m.thread or m.in_reply_to or m.id)
    if name == "watch":
        return lambda m: prefix + (m.watch or "-")
    if name == "author":
        return lambda m: prefix + (m.author or "-")
    return lambda m: prefix + m.platform


_OPS: dict[str, Callable[[Any, Any], bool]] = {
    ">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt, "==": operator.eq, "!=": operator.ne,
}


def _metric(name: str) -> Callable[[GroupState], float | None]:
    """One count metric of a group, exactly as `GroupState.value` gives it (shares and the mean:
    `_raw_share`, rounded where it matters)."""
    if name == "count":
        return lambda s: len(s.window)
    if name == "unique_authors":
        return lambda s: s.unique_authors()
    if name == "flagged":
        return lambda s: s.n_flag
    return lambda s: s.value(name)


def _condition_test(c: Condition) -> Callable[[GroupState], bool]:
    """`c.holds(state.value(c.metric))`, as one closure."""
    bound = c.bound
    if c.metric == "count":  # the most common condition, and the one tested on every mention
        if c.op == ">=":
            return lambda s: len(s.window) >= bound
        if c.op == ">":
            return lambda s: len(s.window) > bound
    if c.metric == "flagged" and c.op == ">=":
        return lambda s: s.n_flag >= bound
    op = _OPS[c.op]
    raw = _raw_share(c.metric)
    if raw is not None:  # a share or a mean: compared unrounded unless it is within rounding of the bound
        return lambda s: (v := raw(s)) is not None and (op(v, bound) if abs(v - bound) >= ROUNDING
                                                         else op(round(v, 4), bound))
    get = _metric(c.metric)
    if c.metric in ("count", "unique_authors", "flagged"):
        if c.op == ">=":
            return lambda s: get(s) >= bound  # type: ignore[operator]
        return lambda s: op(get(s), bound)  # never None
    return lambda s: (v := get(s)) is not None and op(v, bound)


# Metrics are compared as an alert shows them, rounded to 4 places. Rounding moves a value by at
# most 0.00005 (and a difference of two by 0.0001): a value further than this from its bound is on
# the same side of it rounded or not, and needs no round(), which costs more than the rest of a test.
ROUNDING: Final = 0.0002


def _raw_share(name: str) -> Callable[[GroupState], float | None] | None:
    """A share or mean metric before rounding (None for an empty window), or None for other metrics."""
    if name == "share_negative":
        return lambda s: s.n_neg / n if (n := len(s.window)) else 0.0
    if name == "share_positive":
        return lambda s: s.n_pos / n if (n := len(s.window)) else 0.0
    if name == "share_neutral":
        return lambda s: (n - s.n_neg - s.n_pos) / n if (n := len(s.window)) else 0.0
    if name == "mean_compound":
        return lambda s: s.sum_e4 / (n * 10000) if (n := len(s.window)) else None
    if name == "share_flagged":
        return lambda s: s.n_flag / n if (n := len(s.window)) else 0.0
    return None


def _all_or_any(tests: list[Callable[[GroupState], bool]], combine_all: bool) -> Callable[[GroupState], bool]:
    if len(tests) == 1:
        return tests[0]
    if len(tests) == 2:
        a, b = tests
        return (lambda s: a(s) and b(s)) if combine_all else (lambda s: a(s) or b(s))
    chain = tuple(tests)

    def all_of(s: GroupState) -> bool:
        for t in chain:
            if not t(s):
                return False
        return True

    def any_of(s: GroupState) -> bool:
        for t in chain:
            if t(s):
                return True
        return False

    return all_of if combine_all else any_of


def _compile_holds_now(rt: RuleRuntime) -> Callable[[GroupState, float, float | None], bool]:
    """`may_hold(...) and verdict(...)[0]` for one rule, without building metrics and checks: the test
    of a group with nothing open. The same rounded values against the same bounds, and an evaluation
    that lacked history counted exactly as `verdict` counts it (tests/test_engine_compiled.py)."""
    rule = rt.rule
    if isinstance(rule, ThresholdRule):
        test = _all_or_any([_condition_test(c) for c in rule.conditions], rule.combine == "all")
        return lambda state, now, first_ts: test(state)
    if isinstance(rule, SpikeRule):
        min_count, factor, min_mads = rule.min_count, rule.factor, rule.min_mads

        def spike_holds(state: GroupState, now: float, first_ts: float | None) -> bool:
            n = len(state.window)
            if n < min_count:
                return False
            base = baseline(rt, state, now, first_ts)
            if not base.ready:
                return _unready(rt, base.reason, True)
            if n < factor * base.count:
                return False
            return base.mad is None or min_mads <= 0 or n >= base.count + min_mads * base.mad

        return spike_holds
    if isinstance(rule, SentimentShiftRule):
        shift_min, min_baseline, drop = rule.min_count, rule.min_baseline_count, rule.drop

        def shift_holds(state: GroupState, now: float, first_ts: float | None) -> bool:
            count = len(state.window)
            if count < shift_min:
                return False
            base = baseline(rt, state, now, first_ts)
            usual = usable_mean(base, min_baseline)
            if usual is None:
                return _unready(rt, shift_unready_reason(base, min_baseline), True)
            mean = state.sum_e4 / (count * 10000)
            gap = usual - mean
            # Decided on the values an alert shows, rounded to 4 places; rounding them moves the gap by
            # at most 0.0001, so only a gap that close to the bound needs them (round() is slow).
            if gap >= drop + ROUNDING or gap < drop - ROUNDING:
                return gap >= drop
            return round(usual - round(mean, 4), 4) >= drop

        return shift_holds
    if isinstance(rule, FlatlineRule):  # asked on every mention the rule takes: the cheap test first
        silent_for, failing_for = rule.silent_for, rule.failing_for

        def flatline_holds(state: GroupState, now: float, first_ts: float | None) -> bool:
            if not ((silent_for is not None and now - state.last_seen_ts >= silent_for)
                    or (failing_for is not None and state.first_fail_ts is not None
                        and now - state.first_fail_ts >= failing_for)):
                return False
            return verdict(rt, state, now, first_ts)[0]

        return flatline_holds
    return lambda state, now, first_ts: (may_hold(rt, state, now, first_ts)
                                         and verdict(rt, state, now, first_ts)[0])


def _compile_cannot_rise(rt: RuleRuntime) -> Callable[[GroupState], bool]:
    """`cannot_rise(rt, state)` for one rule, as one closure."""
    rule = rt.rule
    if isinstance(rule, (SpikeRule, SentimentShiftRule)):
        min_count = rule.min_count
        return lambda s: len(s.window) < min_count
    if rt.combine_all:
        if not rt.rising:
            return lambda s: False
        if len(rt.rising) == 1 and rt.rising[0].metric == "count":
            least = rt.rising[0].bound
            if rt.rising[0].op == ">=":
                return lambda s: len(s.window) < least
            return lambda s: len(s.window) <= least
        rising = _all_or_any([_condition_test(c) for c in rt.rising], True)
        return lambda s: not rising(s)
    all_rising = rt.all_rising
    return lambda s: all_rising


def _both(where: Predicate | None, rest: Predicate) -> Predicate:
    """The whole match block again, from its two parts (`split_place`)."""
    if where is None:
        return rest
    if rest is take_all:
        return where
    return lambda m, f: where(m, f) and rest(m, f)


def _fires_from(rule: RuleBase) -> int:
    """For a threshold rule: the fewest mentions a window needs for its conditions to hold (count,
    flagged and unique_authors never exceed the window's count); 0 when that is 1 or cannot be told."""
    if not isinstance(rule, ThresholdRule):
        return 0
    least = [_least_count(c) for c in rule.conditions]
    if rule.combine == "all":
        n = max((x for x in least if x is not None), default=0)
    else:
        n = 0 if any(x is None for x in least) else min(x for x in least if x is not None)
    return n if n > 1 else 0


def _least_count(c: Condition) -> int | None:
    """The window count below which `c` cannot hold (None: any count)."""
    if c.metric not in RISING_METRICS or c.op not in (">=", ">"):
        return None
    return math.ceil(c.bound) if c.op == ">=" else math.floor(c.bound) + 1


def _group_value(m: Mention, name: str) -> str:
    if name == "thread":
        return m.thread or m.in_reply_to or m.id
    if name == "watch":
        return m.watch or "-"
    if name == "author":
        return m.author or "-"
    return m.platform


def shift_unready_reason(base: BaselineValue, min_baseline: int) -> str:
    """Why a sentiment-shift rule's baseline cannot be used yet."""
    return base.reason or f"a baseline of {base.mentions} mentions, fewer than {min_baseline}"
