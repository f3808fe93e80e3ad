"""`listener rules check`: validation, review dates, lint warnings, and each rule in plain words."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Iterable

import re2

from listener.duration import format_duration, format_span
from listener.errors import ConfigError, Problem
from listener.rules.classifier import ModelError
from listener.rules.loader import RuleSet, load_rules
from listener.rules.model import (
    BaselineRule, Classifier, FlatlineRule, Match, MatchRule, RuleBase, SentimentShiftRule, SpikeRule, ThresholdRule,
    WindowRule,
)


@dataclass
class CheckReport:
    ruleset: RuleSet | None
    problems: list[Problem] = field(default_factory=list)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]


def check_rules(paths: Iterable[str | Path], today: date) -> CheckReport:
    """Validate rule files; add warnings for overdue reviews and rules that cannot do what they seem to."""
    try:
        ruleset = load_rules(paths)
    except ConfigError as exc:
        return CheckReport(None, list(exc.problems))
    report = CheckReport(ruleset)
    for rule in ruleset.rules:
        file, line = ruleset.origins[rule.id]
        for message in lint(rule, today):
            report.problems.append(Problem(file, line, None, f"rule {rule.id!r}: {message}", severity="warning"))
    return report


def lint(rule: RuleBase, today: date) -> list[str]:
    """Warnings about a valid rule: things that are allowed but probably not meant."""
    out: list[str] = []
    if rule.review_by is not None and rule.review_by < today:
        out.append(f"review_by {rule.review_by.isoformat()} has passed: review the rule and set a new date")
    if isinstance(rule, MatchRule) and not _filters(rule.match):
        out.append("a match rule without any filter fires on every mention")
    blocks = _all_matches(rule.match, "match")
    flag = getattr(rule, "flag", None)
    if flag is not None:
        blocks += _all_matches(flag, "flag")
    for where, match in blocks:
        overlap = {t.casefold() for t in match.any or ()} & {t.casefold() for t in match.none or ()}
        if overlap:
            out.append(f"{where}: {', '.join(sorted(overlap))} in both any and none can never match")
        if match.regex is not None and re2.search(match.regex, "") is not None:
            out.append(f"{where}: the regex matches an empty text, so it lets every mention through")
        for field_name in ("regex", "none_regex"):
            beside = [m.group(1) or m.group(2) for m in _ascii_boundary.finditer(getattr(match, field_name) or "")]
            if beside:
                out.append(f"{where}.{field_name}: \\b next to {', '.join(map(repr, dict.fromkeys(beside)))} never "
                           f"matches there: RE2's \\b knows only ASCII letters, so drop it or write (^|\\W) instead")
    if isinstance(rule, WindowRule) and rule.cooldown and rule.cooldown < rule.window / 2:
        out.append("the cooldown is shorter than half the window: one burst may be announced twice")
    return out


# `\b` beside a letter outside ASCII ("\bça", "préparé\b"): RE2 sees no word boundary there.
_ascii_boundary = re.compile(r"\\b([^\x00-\x7f])|([^\x00-\x7f])\\b")


def _filters(match: Match) -> bool:
    return any(v not in (None, []) for v in match.model_dump().values())


def _all_matches(match: Match, where: str) -> list[tuple[str, Match]]:
    out = [(where, match)]
    for i, branch in enumerate(match.any_of or ()):
        out.extend(_all_matches(branch, f"{where}.any_of[{i}]"))
    return out


# -- plain words ---------------------------------------------------------------------------


def explain(rule: RuleBase) -> str:
    """What a rule will do, in a few sentences a comms lead can check."""
    lines = [f"{rule.id} ({rule.kind}, {rule.severity}{'' if rule.enabled else ', DISABLED'}): "  # type: ignore[attr-defined]
             f"{rule.description or 'no description'}"]
    looks = describe_match(rule.match)
    groups = f", separately for each {' and '.join(rule.group_by)}" if rule.group_by else ""
    if isinstance(rule, MatchRule):
        lines.append(f"  Fires on every mention {looks}{groups}. Further matches within "
                     f"{format_duration(rule.resolve_after)} belong to the same episode"
                     + (f" and are announced at most every {format_duration(rule.cooldown)}." if rule.cooldown
                        else " and each is announced."))
    elif isinstance(rule, ThresholdRule):
        glue = " and " if rule.combine == "all" else " or "
        lines.append(f"  Looks at mentions {looks}{groups}, over a sliding {format_duration(rule.window)}; "
                     f"fires when {glue.join(str(c) for c in rule.conditions)}.")
    elif isinstance(rule, SpikeRule):
        extra = (f" and at least {rule.min_mads:g} MADs above it" if rule.baseline.type == "seasonal"
                 and rule.min_mads else "")
        lines.append(f"  Counts mentions {looks}{groups}, over a sliding {format_duration(rule.window)}; "
                     f"fires when the count is at least {rule.factor:g}x its baseline ({rule.baseline.describe()})"
                     f"{extra} and at least {rule.min_count}.")
    elif isinstance(rule, SentimentShiftRule):
        lines.append(f"  Averages the sentiment of mentions {looks}{groups}, over a sliding "
                     f"{format_duration(rule.window)}; fires when the mean compound is {rule.drop:g} or more below "
                     f"its baseline ({rule.baseline.describe()}), with at least {rule.min_count} mentions in the "
                     f"window and {rule.min_baseline_count} in the baseline.")
    elif isinstance(rule, FlatlineRule):
        what = []
        if rule.silent_for is not None:
            what.append(f"no mention {looks} arrived for {format_duration(rule.silent_for)}")
        if rule.failing_for is not None:
            what.append(f"every poll failed for {format_duration(rule.failing_for)}")
        lines.append(f"  A health alert{groups}: fires when {' or when '.join(what)}.")
    if isinstance(rule, WindowRule) and rule.flag is not None:
        lines.append(f"  Flags mentions {describe_match(rule.flag)} (metrics flagged, share_flagged).")
    if isinstance(rule, BaselineRule):
        lines.append(f"  Stays quiet until it has seen {format_span(rule.needs_history_s)} of history "
                     "(a replay or a freshly started daemon says so).")
    for step in rule.escalate:
        glue = " and " if step.combine == "all" else " or "
        lines.append(f"  Raises the episode to {step.severity} when {glue.join(str(c) for c in step.conditions)}.")
    after = []
    if not isinstance(rule, MatchRule):
        after.append("it resolves once the condition has been false for "
                     f"{format_duration(rule.resolve_after)}" if rule.resolve_after else "it resolves as soon as the "
                     "condition is false")
    if rule.cooldown:
        after.append(f"after a notification it stays quiet for {format_duration(rule.cooldown)} per group")
    if after:
        sentence = "; ".join(after)
        lines.append("  " + sentence[0].upper() + sentence[1:] + ".")
    if rule.route:
        lines.append(f"  Its alerts are routed apart, to '{rule.route}'.")
    return "\n".join(lines)


def describe_match(match: Match) -> str:
    parts: list[str] = []
    if match.platforms:
        parts.append(f"on {', '.join(match.platforms)}")
    if match.watches:
        parts.append(f"found by {', '.join(match.watches)}")
    if match.watch_kinds:
        parts.append(f"found by {' or '.join(match.watch_kinds)} watches")
    if match.langs:
        parts.append(f"in {', '.join(match.langs)}")
    if match.sentiment:
        parts.append(f"scored {match.sentiment}")
    if match.compound_min is not None:
        parts.append(f"compound >= {match.compound_min:g}")
    if match.compound_max is not None:
        parts.append(f"compound <= {match.compound_max:g}")
    if match.any:
        parts.append(f"mentioning any of {_terms(match.any)}")
    if match.all:
        parts.append(f"mentioning all of {_terms(match.all)}")
    if match.regex:
        parts.append(f"matching /{match.regex if len(match.regex) < 60 else match.regex[:57] + '...'}/")
    if match.none:
        parts.append(f"mentioning none of {_terms(match.none)}")
    if match.none_regex:
        parts.append("not matching the none_regex")
    if match.classifier is not None:
        parts.append(describe_classifier(match.classifier))
    if match.any_of:
        parts.append("either " + " or ".join(f"({describe_match(m)})" for m in match.any_of))
    return ", ".join(parts) if parts else "of any kind"


def describe_classifier(c: Classifier) -> str:
    try:
        model = c.text_model()
    except ModelError:
        return f"reading like {c.label!r} to the classifier {c.model} (score at least {c.min_score:g})"
    trained = model.trained
    labelled = trained.get("labelled") or {}
    others = sum(n for label, n in labelled.items() if label != c.label)
    ordinary = f" and {trained['ordinary']} ordinary texts" if trained.get("ordinary") else ""
    return (f"reading like {c.label!r} to the classifier {c.model} (score at least {c.min_score:g}; "
            f"trained on {labelled.get(c.label, '?')} such posts against {others} others{ordinary})")


def _terms(terms: list[str], limit: int = 6) -> str:
    shown = ", ".join(repr(t) for t in terms[:limit])
    return shown + (f" and {len(terms) - limit} more" if len(terms) > limit else "")
