"""The rule engine: scored mentions, poll reports and a clock in, alerts out. Pure: no I/O, no wall clock.

Time is event time: the engine's clock is the newest `created_at` it has seen, or a later
time given to `advance()` or `record_poll()` (the daemon ticks it with the wall clock so that
windows empty, episodes resolve and silences are noticed when nothing arrives). Each rule
keeps state per group: a sliding window of the matching mentions with running sums, bucketed
history for baselines, health reports for flatline rules, and the open episode if there is one.
Each group has at most one pending timer (a heap of due times); when it runs, the group is
re-evaluated (a mention left its window, a resolve delay or a cooldown ended, a source has
been silent long enough) and its next due time is computed, so nothing depends on a new
mention arriving and a long jump of the clock gives the same result as many small ticks.
A group whose window can only drain without anything firing (one post by one author, under a
rule that needs twenty) gets no timer: nothing could come of it, and a sweep once per window
forgets it when its window has passed. Under a threshold rule, a group with fewer mentions than
the rule could fire on is not even a GroupState until it has that many: only its mentions
(`RuleRuntime.small`), with nothing counted, flagged or decided. Under a spike or shift rule, a
mention into a group with nothing open is decided in one step (`quiet.py`) when the rule does not
hold and the group's timer already comes early enough: the common case of a rule fed every mention.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import replace
from typing import Any, Callable, Iterable, Sequence

from listener.alert import Alert
from listener.duration import format_span
from listener.mention import Known, Mention
from listener.rules.alerting import Check
from listener.rules.episodes import alert, decide, evaluate_match, match_metrics, on_match_mention
from listener.rules.filters import Place, RegexBank, place_of
from listener.rules.model import BaselineRule, FlatlineRule, RuleBase, WindowRule
from listener.rules.runtime import RuleRuntime, forgettable, next_look, verdict
from listener.rules.state import Episode, GroupState
from listener.rules.text import TextFeatures, lazy_features

WINDOW_KINDS = frozenset({"threshold", "spike", "sentiment_shift"})
# Fields that only shape what an alert says: changing them on reload keeps a rule's state.
PRESENTATION = frozenset({"description", "owner", "purpose", "review_by", "labels", "title", "message"})


class Engine:
    """Runs a rule set over a stream of scored mentions and poll reports; see the module docstring.

    Inputs, all in event time (epoch seconds) and all returning the alerts they cause:

    - `process(mentions)`: scored mentions, roughly in `created_at` order;
    - `advance(now_ts)`: move the clock (the daemon calls it with the wall clock every few seconds);
    - `record_poll(watch, platform, ts, ok, error=None, watch_kind=None)`: the outcome of one
      poll of one watch on one platform; the daemon's poller calls it after every poll. Only
      flatline rules use it: `failing_for` fires when every poll of a group failed that long.

    State: `snapshot()`/`restore()` carry the decisions (episodes, cooldowns, source health)
    across a restart, `warm()` refills windows and baselines from stored mentions, and
    `replace_rules()` swaps the rule set on a reload, keeping the state of unchanged rules.
    """

    def __init__(self, rules: Sequence[RuleBase]) -> None:
        self.now_ts = -math.inf
        self.first_ts: float | None = None  # when the engine started observing: the history baselines have
        bank = RegexBank()  # one regex pass per mention for the whole rule set
        self._runtimes: list[RuleRuntime] = [RuleRuntime(r, bank) for r in rules if r.enabled]
        self._by_id: dict[str, RuleRuntime] = {rt.rule.id: rt for rt in self._runtimes}
        # Where a mention was found: the rules it may concern, with the group key where the place decides it.
        self._routes: dict[Place, tuple[tuple[RuleRuntime, str | None, bool], ...]] = {}
        # (due time, rule id, group key): ids rather than objects, so a reload can swap rules.
        self._timers: list[tuple[float, str, str]] = []
        self._sweep_due = math.inf  # the earliest RuleRuntime.sweep_due
        self._warming = False  # warm() is refilling windows and baselines

    @property
    def rules(self) -> list[RuleBase]:
        return [rt.rule for rt in self._runtimes]

    def runtime(self, rule_id: str) -> RuleRuntime | None:
        return self._by_id.get(rule_id)

    # -- state that must survive a restart -------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """The decisions that cannot be rebuilt from stored mentions, as plain JSON data.

        Open episodes (id, seq, severity, ...), cooldowns and flatline health. Windows and
        baselines are not included: after a restart they are rebuilt from the store with
        `warm()`. Saved in the same transaction as the outbox rows, this is what keeps a
        restarted daemon from inventing a second id for an episode it already announced.
        """
        rules: dict[str, Any] = {}
        for rt in self._runtimes:
            groups: dict[str, Any] = {}
            for key, state in rt.groups.items():
                ep = state.episode
                health = rt.kind == "flatline"
                if ep is None and state.quiet_until <= self.now_ts and not health:
                    continue
                data: dict[str, Any] = {
                    "values": state.values,
                    "quiet_until": state.quiet_until if math.isfinite(state.quiet_until) else None,
                    "clear_since": state.clear_since,
                    "blocked": state.blocked,
                    "episode": None if ep is None else ep.to_dict(),
                }
                if health:
                    data.update(last_seen_ts=state.last_seen_ts, first_fail_ts=state.first_fail_ts,
                                failed_polls=state.failed_polls, last_error=state.last_error)
                groups[key] = data
            if groups:
                rules[rt.rule.id] = groups
        return {"version": 1, "now_ts": self.now_ts if math.isfinite(self.now_ts) else None,
                "first_ts": self.first_ts, "rules": rules}

    def restore(self, snapshot: dict[str, Any]) -> None:
        """Take back what `snapshot()` saved; state of rules that no longer exist is dropped."""
        if snapshot.get("now_ts") is not None:
            self.now_ts = max(self.now_ts, float(snapshot["now_ts"]))
        if snapshot.get("first_ts") is not None:
            self._observed_since(float(snapshot["first_ts"]))
        for rule_id, groups in snapshot.get("rules", {}).items():
            rt = self._by_id.get(rule_id)
            if rt is None:
                continue
            for key, data in groups.items():
                state = rt.group(key, dict(data["values"]), self.now_ts)
                state.quiet_until = data["quiet_until"] if data["quiet_until"] is not None else -math.inf
                state.clear_since = data["clear_since"]
                state.blocked = bool(data.get("blocked", False))
                if "last_seen_ts" in data:
                    state.last_seen_ts = float(data["last_seen_ts"])
                    state.first_fail_ts = data["first_fail_ts"]
                    state.failed_polls = int(data["failed_polls"])
                    state.last_error = data["last_error"]
                if data["episode"] is not None:
                    ep = state.episode = Episode.from_dict(data["episode"])
                    if rt.kind == "match" and not math.isfinite(ep.resolve_due):
                        ep.resolve_due = max(ep.last_match_ts, ep.start_ts) + rt.rule.resolve_after
                # Re-evaluate at the restored clock: windows may be refilled by warm() meanwhile.
                self._push(rt, key, state, self.now_ts)

    def reset(self) -> None:
        """Forget all state (clock, windows, episodes, timers), keeping the rules.

        For going back to a saved state: `reset()`, then `restore()` and `warm()`, gives what a
        restart would. The pipeline does it when a batch's transaction fails, since the engine
        had already moved on with mentions and alerts that were not stored.
        """
        self.now_ts = -math.inf
        self.first_ts = None
        self._timers = []
        self._sweep_due = math.inf
        for rt in self._runtimes:
            rt.clear_state()

    def warm(self, mentions: Iterable[Mention], sightings: Iterable[tuple[Mention, Known]] = ()) -> None:
        """Refill windows, baselines and last-seen times from stored mentions, emitting nothing.

        `sightings`: the stored posts found again by other watches (see `process_sightings`).
        Groups are timed to their next departure meanwhile: asking a baseline before its history
        is refilled would remember a value computed from part of it (tests/test_engine_compiled.py).
        """
        self._warming = True
        try:
            for m in mentions:
                self._observed_since(m.ts)
                feats = lazy_features(m)
                for rt in self._runtimes:
                    if rt.kind != "match" and rt.predicate(m, feats):
                        self._refill(rt, m, feats)
            for m, known in sightings:
                feats = lazy_features(m)
                for rt in self._runtimes:
                    if rt.kind != "match" and self._takes_again(rt, m, known, feats):
                        self._refill(rt, m, feats)
        finally:
            self._warming = False

    def _refill(self, rt: RuleRuntime, m: Mention, feats: Callable[[], TextFeatures]) -> None:
        for key, values in rt.group_keys(m, feats):
            state = rt.group(key, values, m.ts)
            if rt.kind == "flatline":
                state.last_seen_ts = max(state.last_seen_ts, m.ts)
            else:
                if state.history is not None:
                    state.history.add(m.ts, m.sentiment.compound_e4 if m.sentiment is not None else 0)
                state.add(m, rt.flag(m, feats) if rt.flag is not None else False)
            self._settle(rt, key, state)

    def max_window_s(self) -> float:
        """How far back `warm()` needs stored mentions (windows, and baselines behind them)."""
        spans = [0.0]
        for rt in self._runtimes:
            rule = rt.rule
            if isinstance(rule, BaselineRule):
                spans.append(rule.baseline.span_s(rule.window))
            elif isinstance(rule, WindowRule):
                spans.append(rule.window)
            elif isinstance(rule, FlatlineRule) and rule.silent_for is not None:
                spans.append(rule.silent_for)
        return max(spans)

    def replace_rules(self, rules: Sequence[RuleBase]) -> list[Alert]:
        """Swap in a new rule set (a reload); returns the `resolved` messages it causes.

        A rule whose definition is unchanged keeps its windows, baselines, episodes and
        cooldowns; if only its presentation changed (description, owner, purpose, review_by,
        labels, title, message) the new text is used from the next message on. A rule that
        is new, changed, disabled or removed starts fresh or goes; an episode it had open is
        closed with a `resolved` message that says so, so that no consumer keeps showing an
        alert that nothing will ever resolve. Its window is empty until mentions arrive
        (or until `warm()` refills it).
        """
        old = self._by_id
        kept: dict[str, RuleRuntime] = {}
        runtimes: list[RuleRuntime] = []
        bank = RegexBank()  # for the new and changed rules (kept ones keep theirs)
        for rule in rules:
            if not rule.enabled:
                continue
            rt = old.get(rule.id)
            if rt is not None and same_definition(rt.rule, rule):
                rt.rule = rule
                kept[rule.id] = rt
                runtimes.append(rt)
            else:
                runtimes.append(RuleRuntime(rule, bank))
        out: list[Alert] = []
        for rule_id, rt in old.items():
            if rule_id in kept:
                continue
            for key, state in rt.groups.items():
                if state.episode is not None:
                    metrics, checks = self._current(rt, state)
                    out.extend(alert(rt, key, state, "resolved", metrics, checks, self.now_ts,
                                     note="the rule was changed or removed by a reload"))
                    state.episode = None
        self._runtimes = runtimes
        self._by_id = {rt.rule.id: rt for rt in runtimes}
        self._routes = {}
        self._sweep_due = min((rt.sweep_due for rt in runtimes), default=math.inf)
        return out

    # -- input ---------------------------------------------------------------------

    def process(self, mentions: Iterable[Mention]) -> list[Alert]:
        """Feed scored mentions (in roughly event-time order); return the alerts they cause."""
        out: list[Alert] = []
        routes = self._routes
        for m in mentions:
            ts = m.ts
            if ts > self.now_ts:
                timers = self._timers
                if timers and timers[0][0] <= ts:
                    out.extend(self.advance(ts))
                else:  # no timer comes due: advancing is only moving the clock
                    if self.first_ts is None or ts < self.first_ts:
                        self._observed_since(ts)
                    self.now_ts = ts
                    if ts >= self._sweep_due:
                        self._sweep(ts)
            feats = lazy_features(m)
            words: frozenset[str] | None = None
            place = place_of(m)
            runtimes = routes.get(place)
            if runtimes is None:
                runtimes = self._route(place, m)
            for rt, key, tests in runtimes:
                if tests:  # a rule with a filter beyond where the mention was found
                    need = rt.need_words
                    if need is not None:  # a rule that tests text: has the text any word it needs?
                        if words is None:
                            words = feats().words
                        if rt.need_samples:
                            need = rt.learn_need(words, m.text)
                        if need.isdisjoint(words) and (not rt.need_regexes
                                                       or rt.need_regexes.isdisjoint(rt.regex_hits(m.text))):
                            if rt.free is None or not rt.free(m, feats):
                                continue
                        elif not rt.rest(m, feats):
                            continue
                    elif not rt.takes_all and not rt.rest(m, feats):
                        continue
                if key is None:  # the group depends on more than where the mention was found
                    key_of = rt.key_of
                    if key_of is None:  # grouped by hashtag: in several groups, or none
                        for key, values in rt.group_keys(m, feats):
                            self._take(rt, key, values, m, feats, out)
                        continue
                    key = key_of(m)
                state = rt.groups.get(key)  # (`_take`, inline: this runs for each rule a mention concerns)
                if state is None:
                    if rt.small is not None:
                        if ts <= self.now_ts - rt.window_s or rt.take_small(key, m, self.now_ts):
                            if rt.sweep_due < self._sweep_due:  # (its first small group: to be forgotten)
                                self._sweep_due = rt.sweep_due
                            continue  # too late to count (as in _feed), or taken by a small group
                        state = rt.promote(key, rt.key_values(m), ts)
                    else:
                        state = rt.groups[key] = rt.new_group(rt.key_values(m), ts)
                elif rt.flatline and state.episode is None and not state.blocked:
                    # A flatline rule with nothing to decide now (see _feed), the common case, inline.
                    if ts > state.last_seen_ts:
                        state.last_seen_ts = ts
                    if state.timer_due != math.inf or not rt.watches_silence:
                        continue
                self._feed(rt, key, state, m, feats, out)
        return out

    def _take(self, rt: RuleRuntime, key: str, values: dict[str, str], m: Mention, feats: Callable[[], TextFeatures],
              out: list[Alert]) -> None:
        """A matching mention into the group `key` of `rt`, made (with `values`) if it is new."""
        state = rt.groups.get(key)
        if state is None:
            if rt.small is not None:
                if m.ts <= self.now_ts - rt.window_s or rt.take_small(key, m, self.now_ts):
                    if rt.sweep_due < self._sweep_due:
                        self._sweep_due = rt.sweep_due
                    return
                state = rt.promote(key, values, m.ts)
            else:
                state = rt.groups[key] = rt.new_group(values, m.ts)
        self._feed(rt, key, state, m, feats, out)

    def _route(self, place: Place, m: Mention) -> tuple[tuple[RuleRuntime, str | None, bool], ...]:
        """The rules that take mentions found where `m` was (`place`), remembered for the next ones, each
        with its group key when that depends only on the place (group_by watch, platform or nothing), and
        whether it has filters to test on each mention (text, sentiment, ...)."""
        if len(self._routes) >= 10_000:  # (places are few: watches x platforms x languages)
            self._routes.clear()
        feats = lazy_features(m)
        routed = self._routes[place] = tuple((rt, rt.place_key(m), rt.need_words is not None or not rt.takes_all)
                                             for rt in self._runtimes if rt.where is None or rt.where(m, feats))
        return routed

    def process_sightings(self, sightings: Iterable[tuple[Mention, Known]]) -> list[Alert]:
        """Posts already processed, found again by another watch: each as seen by the new watch, with
        the watches (and kinds) that had found it before. Return the alerts they cause.

        A post counts once per rule: a rule that took it under an earlier watch does not take it again,
        except in a rule grouped by watch, where each watch's group counts what that watch found (an
        @mention that also carries our campaign hashtag is activity on both). A match rule never
        takes it twice: it alerted on the post already.
        """
        out: list[Alert] = []
        for m, known in sightings:
            if m.ts > self.now_ts:
                out.extend(self.advance(m.ts))
            feats = lazy_features(m)
            for rt in self._runtimes:
                if not self._takes_again(rt, m, known, feats):
                    continue
                for key, values in rt.group_keys(m, feats):
                    self._take(rt, key, values, m, feats, out)
        return out

    @staticmethod
    def _takes_again(rt: RuleRuntime, m: Mention, known: Known, feats: Callable[[], TextFeatures]) -> bool:
        """Whether a rule takes a post found again, by `m.watch` (see `process_sightings`)."""
        if not rt.predicate(m, feats):
            return False
        if rt.kind != "match" and "watch" in rt.rule.group_by:
            return True
        return not any(rt.predicate(replace(m, watch=watch, watch_kind=kind), feats) for watch, kind in known)

    def _feed(self, rt: RuleRuntime, key: str, state: GroupState, m: Mention, feats: Callable[[], TextFeatures],
              out: list[Alert]) -> None:
        """One matching mention into one group of one rule."""
        window_s = rt.window_s
        if window_s:  # threshold, spike, sentiment_shift
            history = state.history
            if history is not None:
                history.add(m.ts, m.sentiment.compound_e4 if m.sentiment is not None else 0)
            start = self.now_ts - window_s
            if m.ts > start:  # else older than the window: too late to count (the baseline keeps it)
                flag = rt.flag
                state.add(m, flag(m, feats) if flag is not None else False)
                if state.window[0].ts <= start:
                    state.evict(start)
                if state.episode is None and not state.blocked:
                    quiet = rt.quiet
                    if quiet is not None and quiet(state, self.now_ts, self.first_ts):
                        return  # it does not hold and its timer stands (quiet.py): nothing to settle
                    if rt.holds_now(state, self.now_ts, self.first_ts):
                        out.extend(self._judge(rt, key, state, m.ts))
                else:
                    out.extend(self._judge(rt, key, state, m.ts))
        elif rt.kind == "match":
            out.extend(on_match_mention(rt, key, state, m, self.now_ts))
        else:  # flatline
            if m.ts > state.last_seen_ts:
                state.last_seen_ts = m.ts
            if state.episode is None and not state.blocked and (state.timer_due != math.inf or not rt.watches_silence):
                # Nothing to decide now: the pending timer re-reads last_seen_ts, or (a rule on failing
                # polls alone) a mention changes nothing the rule looks at.
                return
            out.extend(self._evaluate(rt, key, state, m.ts))
        self._settle(rt, key, state)

    def record_poll(self, watch: str | None, platform: str, ts: float, ok: bool, error: str | None = None,
                    watch_kind: str | None = None) -> list[Alert]:
        """Report one poll of `watch` on `platform` at `ts` (success or the error); see the class docstring."""
        out: list[Alert] = []
        if ts > self.now_ts:
            out.extend(self.advance(ts))
        for rt in self._runtimes:
            if rt.poll_match is None or not rt.poll_match(watch, platform, watch_kind):
                continue
            key, values = rt.poll_group(watch, platform)
            state = rt.group(key, values, ts)
            if ok:
                state.first_fail_ts = None
                state.failed_polls = 0
            else:
                state.failed_polls += 1
                if state.first_fail_ts is None:
                    state.first_fail_ts = ts
                state.last_error = (error or "poll failed")[:300]
            out.extend(self._evaluate(rt, key, state, ts))
            self._settle(rt, key, state)
        return out

    def advance(self, now_ts: float) -> list[Alert]:
        """Move the clock forward (never back) and run every timer that has come due."""
        out: list[Alert] = []
        if now_ts <= self.now_ts:
            return out
        self._observed_since(now_ts)
        timers = self._timers
        while timers and timers[0][0] <= now_ts:
            due, rule_id, key = heapq.heappop(timers)
            rt = self._by_id.get(rule_id)
            state = rt.groups.get(key) if rt is not None else None
            if rt is None or state is None or state.timer_due != due:
                continue  # superseded by an earlier timer, or the group or rule is gone
            state.timer_due = math.inf
            # Each timer runs at its own due time, so a resolve is stamped when it really happened.
            if due > self.now_ts:
                self.now_ts = due
            if rt.window_s:
                state.evict(self.now_ts - rt.window_s)
                arrivals = rt.unready  # "stayed quiet for lack of history" counts mentions, not timers
                if state.episode is not None or state.blocked or rt.holds_now(state, self.now_ts, self.first_ts):
                    out.extend(self._judge(rt, key, state, self.now_ts))
                rt.unready = arrivals
            else:
                out.extend(self._on_timer(rt, key, state))
            self._settle(rt, key, state, fired_at=due)
        self.now_ts = now_ts
        if now_ts >= self._sweep_due:
            self._sweep(now_ts)
        return out

    # -- readiness -------------------------------------------------------------------

    def open_episodes(self, rule_id: str) -> int:
        """How many episodes of a rule are open (fired and not yet resolved) at the engine's clock."""
        rt = self._by_id.get(rule_id)
        return 0 if rt is None else sum(1 for state in rt.groups.values() if state.episode is not None)

    def history_note(self, rule_id: str) -> str | None:
        """For a baseline rule that could not decide for lack of history: why, in words."""
        rt = self._by_id.get(rule_id)
        if rt is None or not isinstance(rt.rule, BaselineRule):
            return None
        need = rt.rule.needs_history_s
        have = (self.now_ts - self.first_ts) if self.first_ts is not None and math.isfinite(self.now_ts) else 0.0
        if rt.unready == 0 and have >= need:
            return None
        parts = [f"needs {format_span(need)} of history, had {format_span(have)}"]
        if rt.unready:
            parts.append(f"stayed quiet for lack of it as {rt.unready} mentions came in ({rt.unready_reason})")
        return "; ".join(parts)

    # -- timers ----------------------------------------------------------------------

    def _observed_since(self, ts: float) -> None:
        if math.isfinite(ts) and (self.first_ts is None or ts < self.first_ts):
            self.first_ts = ts

    def _push(self, rt: RuleRuntime, key: str, state: GroupState, due: float) -> None:
        state.timer_due = due
        heapq.heappush(self._timers, (due, rt.rule.id, key))

    def _settle(self, rt: RuleRuntime, key: str, state: GroupState, fired_at: float | None = None) -> None:
        """After a group changed: forget it if idle, else make sure its next timer is set."""
        w = state.window
        if w and state.episode is None and not state.blocked:
            # The common case, as next_look() decides it: a window with nothing open.
            if rt.cannot_rise(state):
                self._drain(rt, key, state)
                return
            first_look = rt.first_look
            if first_look is None or self._warming:  # (a half-refilled history cannot be asked)
                due = w[0].ts + rt.window_s
            else:  # skip the departures that cannot make it hold (drains.py)
                due = first_look(state, self.now_ts, self.first_ts)
                if due == math.inf:
                    self._drain(rt, key, state)
                    return
        elif forgettable(rt, state, self.now_ts):
            rt.groups.pop(key, None)
            return
        else:
            due = next_look(rt, state, self.now_ts)
        if due == math.inf or (fired_at is not None and due <= fired_at):
            return  # (a need at or before the timer that just ran would loop; it never should)
        if due < state.timer_due:
            self._push(rt, key, state, due)

    def _drain(self, rt: RuleRuntime, key: str, state: GroupState) -> None:
        """Draining cannot make it hold: no timer; a sweep forgets the group once it has drained."""
        if not state.draining:
            state.draining = True
            end = state.window[-1].ts + rt.window_s
            rt.draining.append((end, key, state))
            if end < rt.sweep_due:
                rt.sweep_due = end
                if end < self._sweep_due:
                    self._sweep_due = end

    def _sweep(self, now: float) -> None:
        """Forget the timer-less groups (see `_settle`) whose window has passed by `now`.

        Such a group only waits for its window to drain, which cannot make its rule fire, so it
        needs no timer: it waits in its rule's queue, in the order its window ends (small groups,
        `RuleRuntime.small`, are forgotten a generation at a time). Sweeping decides nothing and sends
        nothing; it runs about four times per window of each rule, so a drained group stays in
        memory at most about a quarter of a window longer than it must.
        """
        due = math.inf
        for rt in self._runtimes:
            if rt.sweep_due <= now:
                rt.sweep_due = self._sweep_rule(rt, now)
            if rt.sweep_due < due:
                due = rt.sweep_due
        self._sweep_due = due

    def _sweep_rule(self, rt: RuleRuntime, now: float) -> float:
        window_s = rt.window_s
        queue = rt.draining
        groups = rt.groups
        while queue and queue[0][0] <= now:
            _, key, state = queue.popleft()
            if groups.get(key) is not state:
                continue  # forgotten meanwhile (and maybe started again: that group has its own entry)
            state.draining = False
            w = state.window
            if not w or state.timer_due != math.inf or state.episode is not None or state.blocked:
                continue  # something arrived and it has a timer again (it queues anew when it drains)
            end = w[-1].ts + window_s
            if end > now:  # a mention arrived since it queued: wait for the window's new end
                state.draining = True
                queue.append((end, key, state))
                continue
            if state.history is None and state.quiet_until <= now:
                del groups[key]  # its whole window has passed and nothing else keeps it: forget it
                continue
            state.evict(now - window_s)
            self._settle(rt, key, state)  # forgets it, or (a baseline rule) times its history
        due = max(queue[0][0], now + window_s / 4) if queue else math.inf
        if rt.small_due <= now:
            rt.rotate_small(now)
        return min(due, rt.small_due)

    def _on_timer(self, rt: RuleRuntime, key: str, state: GroupState) -> list[Alert]:
        """A timer of a match or flatline rule (window kinds are handled in `advance`)."""
        if rt.kind == "match":
            return evaluate_match(rt, key, state, self.now_ts)
        return self._evaluate(rt, key, state, self.now_ts)

    # -- window kinds and flatline ---------------------------------------------------

    def _evaluate(self, rt: RuleRuntime, key: str, state: GroupState, trigger_ts: float) -> list[Alert]:
        if state.episode is None and not state.blocked and not rt.holds_now(state, self.now_ts, self.first_ts):
            return []  # the common case, decided without building metrics and checks
        return self._judge(rt, key, state, trigger_ts)

    def _judge(self, rt: RuleRuntime, key: str, state: GroupState, trigger_ts: float) -> list[Alert]:
        """The full verdict, with metrics and checks, and what it means for the group's episode."""
        holds, metrics, checks = verdict(rt, state, self.now_ts, self.first_ts)
        return decide(rt, key, state, holds, metrics, checks, trigger_ts, self.now_ts)

    def _current(self, rt: RuleRuntime, state: GroupState) -> tuple[dict[str, Any], list[Check]]:
        if rt.kind == "match":
            assert state.episode is not None
            return match_metrics(state.episode), []
        _, metrics, checks = verdict(rt, state, self.now_ts, self.first_ts)
        return metrics, checks

def same_definition(a: RuleBase, b: RuleBase) -> bool:
    """Whether two rules decide the same way (they may differ in what their alerts say): the same
    definition, and the same version of each classifier model they read."""
    return (type(a) is type(b) and a.model_dump(exclude=set(PRESENTATION)) == b.model_dump(exclude=set(PRESENTATION))
            and [c.stamp for c in a.classifiers()] == [c.stamp for c in b.classifiers()])

