"""The rule engine: scored mentions and a clock in, alerts out. Pure: no I/O, no wall clock.

Time is event time: the engine's clock is the newest `created_at` it has seen, or a later
time given to `advance()` (the daemon ticks it with the wall clock so that windows empty
and episodes resolve when nothing arrives). Each rule keeps state per group: a sliding
window of the matching mentions with running sums, and the open episode if there is one.
Timers (a heap of due times) re-evaluate a group when a mention leaves its window, when a
resolve delay ends and when a cooldown ends, so nothing depends on a new mention arriving.
"""

from __future__ import annotations

import bisect
import heapq
import math
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

from listener.alert import Alert, episode_id
from listener.duration import format_duration
from listener.mention import Mention
from listener.rules.filters import Predicate, TextFeatures, compile_match, features
from listener.rules.model import MatchRule, RuleBase, ThresholdRule
from listener.rules.terms import top_terms

NEG, POS = -0.05, 0.05
MAX_SAMPLES = 5


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


@dataclass(slots=True)
class GroupState:
    values: dict[str, str]
    window: deque[Mention] = field(default_factory=deque)
    n_neg: int = 0
    n_pos: int = 0
    sum_compound: float = 0.0
    authors: Counter[str] = field(default_factory=Counter)
    episode: Episode | None = None
    quiet_until: float = -math.inf
    clear_since: float | None = None

    def add(self, m: Mention) -> None:
        w = self.window
        if not w or m.ts >= w[-1].ts:
            w.append(m)
        else:  # a late mention: keep the window in event-time order
            index = bisect.bisect_right([x.ts for x in w], m.ts)
            w.insert(index, m)
        c = m.compound
        self.sum_compound += c
        if c <= NEG:
            self.n_neg += 1
        elif c >= POS:
            self.n_pos += 1
        if m.author:
            self.authors[m.author] += 1

    def evict(self, before_ts: float, window_s: float = 0.0) -> None:
        """Drop mentions older than `before_ts`; with `window_s`, those whose window has ended by
        `before_ts` (ts + window_s <= before_ts): the same sum their timer was scheduled with, so a
        timer always empties what it was set for and an idle group can be forgotten."""
        w = self.window
        while w and (w[0].ts + window_s <= before_ts if window_s else w[0].ts < before_ts):
            m = w.popleft()
            c = m.compound
            self.sum_compound -= c
            if c <= NEG:
                self.n_neg -= 1
            elif c >= POS:
                self.n_pos -= 1
            if m.author:
                left = self.authors[m.author] - 1
                if left:
                    self.authors[m.author] = left
                else:
                    del self.authors[m.author]
        if not w:
            self.sum_compound = 0.0  # no float drift on an empty window

    def metrics(self) -> dict[str, Any]:
        n = len(self.window)
        if n == 0:
            return {"count": 0, "share_negative": 0.0, "share_positive": 0.0, "share_neutral": 0.0,
                    "mean_compound": None, "unique_authors": 0}
        return {
            "count": n,
            "share_negative": round(self.n_neg / n, 4),
            "share_positive": round(self.n_pos / n, 4),
            "share_neutral": round((n - self.n_neg - self.n_pos) / n, 4),
            "mean_compound": round(self.sum_compound / n, 4),
            "unique_authors": len(self.authors),
        }


class RuleRuntime:
    """One rule, compiled, with its per-group state."""

    def __init__(self, rule: RuleBase) -> None:
        self.rule = rule
        self.predicate: Predicate = compile_match(rule.match)
        self.groups: dict[str, GroupState] = {}

    def group_keys(self, m: Mention, feats: Callable[[], TextFeatures]) -> list[tuple[str, dict[str, str]]]:
        by = self.rule.group_by
        if not by:
            if isinstance(self.rule, MatchRule):
                # Without group_by every matching mention is its own episode.
                return [(f"mention={m.platform}:{m.id}", {"mention": f"{m.platform}:{m.id}"})]
            return [("all", {})]
        combos: list[dict[str, str]] = [{}]
        for name in by:
            if name == "hashtag":
                tags = feats().hashtags
                if not tags:
                    return []  # a mention without hashtags is in no hashtag group
                combos = [dict(c, hashtag=t) for c in combos for t in tags]
                continue
            if name == "thread":
                value = m.thread or m.in_reply_to or m.id
            elif name == "watch":
                value = m.watch or "-"
            elif name == "author":
                value = m.author or "-"
            else:
                value = m.platform
            for c in combos:
                c[name] = value
        return [(",".join(f"{k}={v}" for k, v in c.items()), c) for c in combos]


class Engine:
    """Runs a rule set over a stream of scored mentions; see the module docstring."""

    def __init__(self, rules: Sequence[RuleBase]) -> None:
        self.now_ts = -math.inf
        self._runtimes: list[RuleRuntime] = [RuleRuntime(r) for r in rules if r.enabled]
        self._by_id: dict[str, RuleRuntime] = {rt.rule.id: rt for rt in self._runtimes}
        # (due time, rule id, group key): ids rather than objects, so a reload can swap rules.
        self._timers: list[tuple[float, str, str]] = []

    @property
    def rules(self) -> list[RuleBase]:
        return [rt.rule for rt in self._runtimes]

    # -- state that must survive a restart -------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """The decisions that cannot be rebuilt from stored mentions, as plain JSON data.

        Open episodes (id, seq, severity, ...) and cooldowns. Windows are not included: after
        a restart they are rebuilt from the store with `warm()`. Saved in the same transaction
        as the outbox rows, this is what keeps a restarted daemon from inventing a second id
        for an episode it already announced.
        """
        rules: dict[str, Any] = {}
        for rt in self._runtimes:
            groups: dict[str, Any] = {}
            for key, state in rt.groups.items():
                ep = state.episode
                if ep is None and state.quiet_until <= self.now_ts:
                    continue
                groups[key] = {
                    "values": state.values,
                    "quiet_until": state.quiet_until if math.isfinite(state.quiet_until) else None,
                    "clear_since": state.clear_since,
                    "episode": None if ep is None else {
                        "id": ep.id, "start_ts": ep.start_ts, "seq": ep.seq, "severity": ep.severity,
                        "matches": ep.matches, "last_match_ts": ep.last_match_ts,
                        "pending_update": ep.pending_update,
                        "samples": [m.to_dict() for m in ep.samples[:MAX_SAMPLES]],
                    },
                }
            if groups:
                rules[rt.rule.id] = groups
        return {"version": 1, "now_ts": self.now_ts if math.isfinite(self.now_ts) else None, "rules": rules}

    def restore(self, snapshot: dict[str, Any]) -> None:
        """Take back what `snapshot()` saved; state of rules that no longer exist is dropped."""
        if snapshot.get("now_ts") is not None:
            self.now_ts = max(self.now_ts, float(snapshot["now_ts"]))
        for rule_id, groups in snapshot.get("rules", {}).items():
            rt = self._by_id.get(rule_id)
            if rt is None:
                continue
            for key, data in groups.items():
                state = rt.groups.setdefault(key, GroupState(dict(data["values"])))
                state.quiet_until = data["quiet_until"] if data["quiet_until"] is not None else -math.inf
                state.clear_since = data["clear_since"]
                ep = data["episode"]
                if ep is not None:
                    state.episode = Episode(
                        id=ep["id"], start_ts=ep["start_ts"], seq=ep["seq"], severity=ep["severity"],
                        matches=ep["matches"], last_match_ts=ep["last_match_ts"],
                        pending_update=ep["pending_update"],
                        samples=[Mention.from_dict(m) for m in ep["samples"]],
                    )
                    due = (ep["last_match_ts"] + rt.rule.resolve_after if isinstance(rt.rule, MatchRule)
                           else self.now_ts)
                    self._schedule(due, rt, key)

    def warm(self, mentions: Iterable[Mention]) -> None:
        """Refill windows from stored mentions after a restart, deciding and emitting nothing."""
        for m in mentions:
            for rt in self._runtimes:
                if not isinstance(rt.rule, ThresholdRule):
                    continue
                cached: list[TextFeatures] = []

                def feats(m: Mention = m, cached: list[TextFeatures] = cached) -> TextFeatures:
                    if not cached:
                        cached.append(features(m.text))
                    return cached[0]

                if not rt.predicate(m, feats):
                    continue
                for key, values in rt.group_keys(m, feats):
                    state = rt.groups.get(key)
                    if state is None:
                        state = rt.groups[key] = GroupState(values)
                    state.add(m)
                    self._schedule(m.ts + rt.rule.window, rt, key)

    def max_window_s(self) -> float:
        """How far back `warm()` needs stored mentions."""
        return max((rt.rule.window for rt in self._runtimes if isinstance(rt.rule, ThresholdRule)), default=0.0)

    # -- input ---------------------------------------------------------------------

    def process(self, mentions: Iterable[Mention]) -> list[Alert]:
        """Feed scored mentions (in roughly event-time order); return the alerts they cause."""
        out: list[Alert] = []
        for m in mentions:
            if m.ts > self.now_ts:
                out.extend(self.advance(m.ts))
            cached: list[TextFeatures] = []

            def feats(m: Mention = m, cached: list[TextFeatures] = cached) -> TextFeatures:
                if not cached:
                    cached.append(features(m.text))
                return cached[0]

            for rt in self._runtimes:
                if not rt.predicate(m, feats):
                    continue
                for key, values in rt.group_keys(m, feats):
                    state = rt.groups.get(key)
                    if state is None:
                        state = rt.groups[key] = GroupState(values)
                    if isinstance(rt.rule, ThresholdRule):
                        out.extend(self._on_threshold_mention(rt, key, state, m))
                    else:
                        out.extend(self._on_match_mention(rt, key, state, m))
        return out

    def advance(self, now_ts: float) -> list[Alert]:
        """Move the clock forward (never back) and run every timer that has come due."""
        out: list[Alert] = []
        if now_ts <= self.now_ts:
            return out
        timers = self._timers
        while timers and timers[0][0] <= now_ts:
            due, rule_id, key = heapq.heappop(timers)
            # Each timer runs at its own due time, so a long jump gives the same result as
            # many small ticks: a resolve is stamped when the condition really went false.
            self.now_ts = max(self.now_ts, due)
            rt = self._by_id.get(rule_id)
            if rt is None:
                continue
            state = rt.groups.get(key)
            if state is None:
                continue
            if isinstance(rt.rule, ThresholdRule):
                state.evict(self.now_ts, rt.rule.window)
                out.extend(self._evaluate_threshold(rt, key, state, trigger_ts=self.now_ts))
            else:
                out.extend(self._evaluate_match(rt, key, state))
            self._forget_if_idle(rt, key, state)
        self.now_ts = now_ts
        return out

    def _schedule(self, due_ts: float, rt: RuleRuntime, key: str) -> None:
        heapq.heappush(self._timers, (due_ts, rt.rule.id, key))

    def _forget_if_idle(self, rt: RuleRuntime, key: str, state: GroupState) -> None:
        if not state.window and state.episode is None and state.quiet_until <= self.now_ts:
            rt.groups.pop(key, None)

    # -- threshold -----------------------------------------------------------------

    def _on_threshold_mention(self, rt: RuleRuntime, key: str, state: GroupState,
                              m: Mention) -> list[Alert]:
        rule = rt.rule
        assert isinstance(rule, ThresholdRule)
        start = self.now_ts - rule.window
        if m.ts < start:
            return []  # older than the window: too late to count
        state.add(m)
        state.evict(start)
        self._schedule(m.ts + rule.window, rt, key)
        return self._evaluate_threshold(rt, key, state, trigger_ts=m.ts)

    def _conditions(self, rule: ThresholdRule, metrics: dict[str, Any]) -> tuple[bool, list[dict[str, Any]]]:
        checks = []
        for c in rule.conditions:
            value = metrics.get(c.metric)
            checks.append({"metric": c.metric, "op": c.op, "bound": c.bound, "value": value,
                           "met": c.holds(value)})
        met = [c["met"] for c in checks]
        return (all(met) if rule.combine == "all" else any(met)), checks

    def _evaluate_threshold(self, rt: RuleRuntime, key: str, state: GroupState,
                            trigger_ts: float) -> list[Alert]:
        rule = rt.rule
        assert isinstance(rule, ThresholdRule)
        now = self.now_ts
        metrics = state.metrics()
        holds, checks = self._conditions(rule, metrics)
        ep = state.episode
        if ep is None:
            if not holds:
                return []
            if now < state.quiet_until:
                self._schedule(state.quiet_until, rt, key)
                return []
            start = min(trigger_ts, now)
            state.episode = Episode(id=episode_id(rule.id, key, start), start_ts=start, severity=rule.severity)
            state.clear_since = None
            state.quiet_until = now + rule.cooldown
            return self._alert(rt, key, state, "firing", metrics, checks)
        if holds:
            state.clear_since = None
            return []
        if state.clear_since is None:
            state.clear_since = now
        if now - state.clear_since >= rule.resolve_after:
            alerts = self._alert(rt, key, state, "resolved", metrics, checks)
            state.episode = None
            state.clear_since = None
            return alerts
        self._schedule(state.clear_since + rule.resolve_after, rt, key)
        return []

    # -- match ---------------------------------------------------------------------

    def _on_match_mention(self, rt: RuleRuntime, key: str, state: GroupState,
                          m: Mention) -> list[Alert]:
        rule = rt.rule
        now = self.now_ts
        ep = state.episode
        if ep is None:
            start = m.ts
            ep = state.episode = Episode(id=episode_id(rule.id, key, start), start_ts=start, severity=rule.severity)
        ep.matches += 1
        ep.samples.insert(0, m)
        del ep.samples[MAX_SAMPLES * 4 :]
        ep.last_match_ts = max(ep.last_match_ts, m.ts)
        self._schedule(max(ep.last_match_ts, now) + rule.resolve_after, rt, key)
        if ep.matches == 1 or now >= state.quiet_until:
            if ep.matches > 1:
                ep.seq += 1
            ep.pending_update = False
            state.quiet_until = now + rule.cooldown
            return self._alert(rt, key, state, "firing", self._match_metrics(ep), [])
        ep.pending_update = True
        self._schedule(state.quiet_until, rt, key)
        return []

    def _evaluate_match(self, rt: RuleRuntime, key: str, state: GroupState) -> list[Alert]:
        ep = state.episode
        if ep is None:
            return []
        now = self.now_ts
        if now >= max(ep.last_match_ts, ep.start_ts) + rt.rule.resolve_after:
            alerts = self._alert(rt, key, state, "resolved", self._match_metrics(ep), [])
            state.episode = None
            return alerts
        if ep.pending_update and now >= state.quiet_until:
            ep.seq += 1
            ep.pending_update = False
            state.quiet_until = now + rt.rule.cooldown
            return self._alert(rt, key, state, "firing", self._match_metrics(ep), [])
        return []

    @staticmethod
    def _match_metrics(ep: Episode) -> dict[str, Any]:
        samples = ep.samples
        n = len(samples)
        return {
            "count": ep.matches,
            "mean_compound": round(sum(s.compound for s in samples) / n, 4) if n else None,
            "unique_authors": len({s.author for s in samples if s.author}),
        }

    # -- alerts --------------------------------------------------------------------

    def _alert(self, rt: RuleRuntime, key: str, state: GroupState, status: str,
               metrics: dict[str, Any], checks: list[dict[str, Any]]) -> list[Alert]:
        ep = state.episode
        assert ep is not None
        if status == "resolved":
            ep.seq += 1
        rule = rt.rule
        now = self.now_ts
        if isinstance(rule, ThresholdRule):
            pool = list(state.window)
            window_start, window_label = now - rule.window, format_duration(rule.window)
        else:
            pool = list(ep.samples)
            window_start, window_label = ep.start_ts, format_duration(max(now - ep.start_ts, 0))
        samples = sorted(pool, key=lambda s: (s.compound, -s.ts))[:MAX_SAMPLES]
        terms = top_terms([s.text for s in pool[-300:]], exclude=_group_words(state.values))
        first = samples[0] if samples else None
        values: dict[str, Any] = {
            "rule": rule.id, "severity": ep.severity, "status": status, "group": key, "window": window_label,
            "top_terms": ", ".join(terms) if terms else None,
            "sample_text": first.text if first else None,
            "sample_url": first.url if first else None,
            "sample_author": first.author if first else None,
            **metrics,
        }
        for name in ("watch", "thread", "author", "platform", "hashtag"):
            values[name] = state.values.get(name) or (getattr(first, name, None) if first and name != "hashtag" else None)
        return [
            Alert(
                id=ep.id, seq=ep.seq, rule=rule.id, status=status, severity=ep.severity,
                title=rule.title.render(values), summary=rule.message.render(values),
                group_key=key, group=dict(state.values), episode_start_ts=ep.start_ts, fired_at_ts=now,
                window_start_ts=window_start, window_end_ts=now, metrics=metrics, conditions=tuple(checks),
                samples=tuple(samples), top_terms=tuple(terms), labels=dict(rule.labels), route=rule.route,
                description=rule.description,
            )
        ]


def _group_words(values: dict[str, str]) -> set[str]:
    return {v.casefold().lstrip("#@") for v in values.values()}
