"""What a verdict means for a group's episode: open it, escalate it, resolve it, and the alert each step sends.

Pure functions of a rule's runtime, a group's state and the engine's clock (`now`); the
engine decides when to call them (a mention arrived, a timer ran). Window kinds and flatline
rules go through `decide()` with a verdict; match rules have an episode per burst of matching
mentions (`on_match_mention()`, then `evaluate_match()` when their timer runs).
"""

from __future__ import annotations

from typing import Any

from listener.alert import Alert, episode_id
from listener.mention import Mention
from listener.rules.alerting import Check, build_alert, check
from listener.rules.model import RuleBase, severity_rank
from listener.rules.runtime import RuleRuntime
from listener.rules.state import KEPT_SAMPLES, Episode, GroupState

MAX_EPISODE_AUTHORS = 1000


def decide(rt: RuleRuntime, key: str, state: GroupState, holds: bool, metrics: dict[str, Any],
           checks: list[Check], trigger_ts: float, now: float) -> list[Alert]:
    """A window or flatline rule's verdict at `now`: open, escalate or (after resolve_after) resolve."""
    rule = rt.rule
    ep = state.episode
    if ep is None:
        if not holds:
            state.blocked = False
            return []
        if now < state.quiet_until:
            state.blocked = True
            return []
        state.blocked = False
        start = min(trigger_ts, now)
        severity, why = escalation(rule, metrics, rule.severity)
        state.episode = Episode(id=episode_id(rule.id, key, start), start_ts=start, severity=severity)
        state.clear_since = None
        state.quiet_until = now + rule.cooldown
        return alert(rt, key, state, "firing", metrics, checks, now, escalation=why)
    if holds:
        state.clear_since = None
        severity, why = escalation(rule, metrics, ep.severity)
        if severity != ep.severity:  # escalations go out at once, cooldown or not
            ep.severity = severity
            ep.seq += 1
            state.quiet_until = now + rule.cooldown
            return alert(rt, key, state, "firing", metrics, checks, now, escalation=why)
        return []
    if state.clear_since is None:
        state.clear_since = now
    if now - state.clear_since >= rule.resolve_after:
        alerts = alert(rt, key, state, "resolved", metrics, checks, now)
        state.episode = None
        state.clear_since = None
        return alerts
    return []


def escalation(rule: RuleBase, metrics: dict[str, Any], current: str) -> tuple[str, list[Check]]:
    """The highest severity whose `escalate` step the metrics meet (never below `current`), and why."""
    severity, why = current, []
    for step in rule.escalate:
        if severity_rank(step.severity) <= severity_rank(severity):
            continue
        checks = [check(c.metric, c.op, c.bound, metrics.get(c.metric)) for c in step.conditions]
        met = [c["met"] for c in checks]
        if all(met) if step.combine == "all" else any(met):
            severity, why = step.severity, checks
    return severity, why


def on_match_mention(rt: RuleRuntime, key: str, state: GroupState, m: Mention, now: float) -> list[Alert]:
    """A mention that a match rule matched: the first opens an episode; later ones update it after the cooldown."""
    rule = rt.rule
    ep = state.episode
    if ep is None:
        ep = state.episode = Episode(id=episode_id(rule.id, key, m.ts), start_ts=m.ts, severity=rule.severity)
    ep.matches += 1
    ep.samples.insert(0, m)
    del ep.samples[KEPT_SAMPLES:]
    if m.author and len(ep.authors) < MAX_EPISODE_AUTHORS:
        ep.authors.add(m.author)
    ep.last_match_ts = max(ep.last_match_ts, m.ts)
    ep.resolve_due = max(ep.resolve_due, max(m.ts, now) + rule.resolve_after)
    metrics = match_metrics(ep)
    severity, why = escalation(rule, metrics, ep.severity)
    if ep.matches == 1 or severity != ep.severity or now >= state.quiet_until:
        if ep.matches > 1:
            ep.seq += 1
        ep.severity = severity
        ep.pending_update = False
        state.quiet_until = now + rule.cooldown
        return alert(rt, key, state, "firing", metrics, [], now, escalation=why)
    ep.pending_update = True
    return []


def evaluate_match(rt: RuleRuntime, key: str, state: GroupState, now: float) -> list[Alert]:
    """A match rule's timer: resolve the episode when no match came for resolve_after, or send the held update."""
    ep = state.episode
    if ep is None:
        return []
    if now >= ep.resolve_due:
        alerts = alert(rt, key, state, "resolved", match_metrics(ep), [], now)
        state.episode = None
        return alerts
    if ep.pending_update and now >= state.quiet_until:
        ep.seq += 1
        ep.pending_update = False
        state.quiet_until = now + rt.rule.cooldown
        return alert(rt, key, state, "firing", match_metrics(ep), [], now)
    return []


def match_metrics(ep: Episode) -> dict[str, Any]:
    samples = ep.samples
    n = len(samples)
    return {
        "count": ep.matches,
        "mean_compound": round(sum(s.compound for s in samples) / n, 4) if n else None,
        "unique_authors": len(ep.authors) or len({s.author for s in samples if s.author}),
    }


def alert(rt: RuleRuntime, key: str, state: GroupState, status: str, metrics: dict[str, Any], checks: list[Check],
          now: float, escalation: list[Check] | None = None, note: str | None = None) -> list[Alert]:
    """The message for the group's episode (a resolution takes the next seq)."""
    ep = state.episode
    assert ep is not None
    if status == "resolved":
        ep.seq += 1
    return [build_alert(rt.rule, rt.flag is not None, key, state, ep, status, metrics, checks, now,
                        escalation, note, rt.explainer)]
