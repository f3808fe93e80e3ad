"""Turning an episode into an Alert: samples, top terms, template values and the plain-words explanation."""

from __future__ import annotations

import heapq
from typing import Any, Sequence

from listener.alert import MAX_MATCHED, MAX_MATCHED_TEXT, Alert, cut
from listener.duration import format_duration, format_span
from listener.mention import Mention, format_time, from_ts
from listener.rules.filters import Explainer
from listener.rules.model import Condition, FlatlineRule, MatchRule, RuleBase, WindowRule
from listener.rules.state import MAX_SAMPLES, Episode, GroupState
from listener.rules.terms import top_terms

Check = dict[str, Any]  # one bound tested: metric, op, bound, value, met (and a note)


def check(metric: str, op: str, bound: float, value: float | None, note: str | None = None) -> Check:
    c = {"metric": metric, "op": op, "bound": round(float(bound), 4), "value": value,  # (15.0, compiled or not)
         "met": Condition(metric, op, bound).holds(value)}
    if note:
        c["note"] = note
    return c


def num(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}" if value.is_integer() else f"{value:.2f}"
    return "-" if value is None else str(value)


def build_alert(rule: RuleBase, flagged_rule: bool, key: str, state: GroupState, ep: Episode, status: str,
                metrics: dict[str, Any], checks: list[Check], now: float, escalation: list[Check] | None,
                note: str | None, explainer: Explainer | None = None) -> Alert:
    pool: list[Mention]
    if isinstance(rule, WindowRule):
        pool = list(state.window)
        if flagged_rule and state.n_flag and state.flags is not None:
            pool = [m for m, f in zip(state.window, state.flags) if f]
        window_start, window_label = now - rule.window, format_duration(rule.window)
    elif isinstance(rule, MatchRule):
        pool = list(ep.samples)
        window_start, window_label = ep.start_ts, format_duration(max(now - ep.start_ts, 0))
    else:
        pool = []
        window_start = min(state.last_seen_ts, now)
        window_label = format_duration(round(now - window_start))
    # The most negative first, the newest among equals: `sorted(...)[:MAX_SAMPLES]`, without sorting a
    # window of thousands to keep five.
    samples = heapq.nsmallest(MAX_SAMPLES, pool, key=lambda s: (s.compound, -s.ts))
    terms = top_terms([s.text for s in pool[-300:]], exclude=_group_words(state.values)) if pool else []
    matches = tuple(tuple(cut(t, MAX_MATCHED_TEXT) for t in explainer(s)[:MAX_MATCHED]) for s in samples) \
        if explainer is not None else ()
    explanation = explain(status, checks, escalation, ep.severity, note, matches[0] if matches else ())
    first = samples[0] if samples else None
    values: dict[str, Any] = {
        "rule": rule.id, "severity": ep.severity, "status": status, "group": key, "window": window_label,
        "top_terms": ", ".join(terms) if terms else None,
        "sample_text": first.text if first else None,
        "sample_url": first.url if first else None,
        "sample_author": first.author if first else None,
        "explanation": explanation, "description": rule.description or None,
        **metrics,
    }
    if isinstance(rule, FlatlineRule):
        values.update(silent=format_duration(round(metrics["silent_s"])),
                      failing=format_duration(round(metrics["failing_s"])), last_error=state.last_error)
    context = first or state.last
    for name in ("watch", "thread", "author", "platform", "hashtag"):
        values[name] = state.values.get(name) or (getattr(context, name, None) if context and name != "hashtag"
                                                  else None)
    if status == "resolved":
        # The window is (nearly) empty by now: say what is over rather than render "0 of 0".
        title = f"Resolved: {ep.last_title or rule.title.render(values)}"
        started = format_time(from_ts(ep.start_ts)).replace("T", " ")
        summary = f"Over after {format_span(max(now - ep.start_ts, 0))} (began {started}); {explanation}."
    else:
        title, summary = rule.title.render(values), rule.message.render(values)
        ep.last_title = title
    return Alert(
        id=ep.id, seq=ep.seq, rule=rule.id, status=status, severity=ep.severity,
        title=title, summary=summary,
        group_key=key, group=dict(state.values), episode_start_ts=ep.start_ts, fired_at_ts=now,
        window_start_ts=window_start, window_end_ts=now, metrics=metrics,
        conditions=tuple(checks) + tuple(escalation or ()),
        samples=tuple(samples), sample_matches=matches, top_terms=tuple(terms), labels=dict(rule.labels),
        route=rule.route,
        description=rule.description, explanation=explanation,
    )


def describe_check(c: Check) -> str:
    text = f"{c['metric']} {num(c['value'])} {c['op']} {num(c['bound'])}"
    if c.get("note"):
        text += f" ({c['note']})"
    return text


def explain(status: str, checks: list[Check], escalation: list[Check] | None, severity: str,
            note: str | None, matched: Sequence[str] = ()) -> str:
    """Why an alert fired, escalated or resolved: each bound with the value it saw (and, for a
    match rule, what its filters found in the first example)."""
    if status == "resolved":
        failing = [c for c in checks if not c["met"]]
        text = "resolved: " + ("; ".join("no longer " + describe_check(c) for c in failing)
                               if failing else "no matching mention for the resolve delay")
    else:
        met = [c for c in checks if c["met"]]
        if met:
            text = "fired: " + "; ".join(describe_check(c) for c in met)
        else:
            text = "fired: a mention matched" + (" (" + ", ".join(f'"{t}"' for t in matched) + ")" if matched else "")
        if escalation:
            text += f"; {severity} because " + "; ".join(describe_check(c) for c in escalation if c["met"])
    if note:
        text += f" ({note})"
    return text


def _group_words(values: dict[str, str]) -> set[str]:
    return {v.casefold().lstrip("#@") for v in values.values()}
