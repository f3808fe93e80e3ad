"""Rule unit tests in YAML: mentions and poll reports at relative times in, expected alerts out.

In the spirit of `promtool test rules`: a test file names rule files, then each test gives
input (mentions at `+0s`, `+5m`, ...; poll outcomes for flatline rules) and checkpoints. At
each checkpoint the alert messages sent since the previous one must be exactly the ones
listed (each matched on the fields given). Mentions are scored by VADER unless a test sets
`compound`, so a test shows what the live daemon would do with the same words.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any, Iterable, Literal

from pydantic import BeforeValidator, Field, WithJsonSchema, model_validator

from listener.alert import Alert
from listener.duration import Duration, format_span, parse_duration
from listener.errors import ConfigError, Problem
from listener.mention import Mention, Sentiment, format_time, from_ts
from listener.rules.engine import Engine
from listener.rules.loader import RuleSet, load_rules
from listener.rules.model import Severity, Strict
from listener.sentiment import SentimentScorer
from listener.yamlfile import load_file, position

TEST_SUFFIXES = (".test.yaml", ".test.yml")
DEFAULT_START = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)  # a Monday morning


def _offset(value: Any) -> float:
    """`+5m` (or `5m`, or seconds) after the test's start."""
    if isinstance(value, str) and value.strip().startswith("+"):
        value = value.strip()[1:]
    return parse_duration(value)


Offset = Annotated[
    float,
    BeforeValidator(_offset),
    WithJsonSchema({"type": "string", "description": "e.g. +0s, +5m, +2h, +1h30m"}),
]


class FoundBy(Strict):
    """Another watch that finds the same post."""

    watch: str = Field(description="The watch id.")
    watch_kind: Literal["account", "hashtag", "query", "post"] | None = None


class MentionInput(Strict):
    """One mention, or a burst of them (`texts`, `repeat`, `every`)."""

    at: Offset = Field(description="When (after the test's start) the first of these mentions was posted.")
    text: str | None = Field(None, description="The text.")
    texts: list[str] | None = Field(None, description="Several texts, one mention each (cycled with `repeat`).")
    repeat: int | None = Field(None, ge=1, le=10000, description="How many mentions (default: one per text).")
    every: Duration = Field(30.0, description="Time between the mentions of a burst (default 30s).")
    compound: float | None = Field(None, ge=-1, le=1, description="Use this compound instead of scoring with VADER.")
    platform: str | None = None
    author: str | None = Field(None, description="Default: a different author for every mention.")
    watch: str | None = None
    watch_kind: Literal["account", "hashtag", "query", "post"] | None = None
    thread: str | None = None
    in_reply_to: str | None = None
    lang: str | None = None
    url: str | None = None
    also_found_by: list[FoundBy] = Field(
        default_factory=list,
        description="Other watches that find the same posts right after (an @mention that also carries our hashtag).",
    )

    @model_validator(mode="after")
    def _one_text(self) -> MentionInput:
        if (self.text is None) == (self.texts is None):
            raise ValueError("give either text or texts")
        if self.texts is not None and not self.texts:
            raise ValueError("texts cannot be empty")
        return self


class PollInput(Strict):
    """One poll outcome, as the daemon's poller reports it (for flatline rules)."""

    at: Offset
    watch: str | None = None
    platform: str = "x"
    watch_kind: Literal["account", "hashtag", "query", "post"] | None = None
    ok: bool = True
    error: str | None = None
    repeat: int = Field(1, ge=1, le=10000, description="How many polls, `every` apart.")
    every: Duration = 300.0


class ExpectedAlert(Strict):
    """An alert message, described by the fields that matter to the test."""

    rule: str
    status: Literal["firing", "resolved"] = "firing"
    severity: Severity | None = None
    group: dict[str, str] | None = Field(None, description="These group values (others may exist).")
    route: str | None = None
    summary_contains: str | None = None


class Checkpoint(Strict):
    at: Offset = Field(
        description="The clock is advanced to this time; then the messages since the last checkpoint are compared."
    )
    alerts: list[ExpectedAlert] = Field(default_factory=list, description="Exactly these messages, in any order.")


class RuleTest(Strict):
    name: str
    start: datetime | None = Field(None, description="The time `+0s` stands for (default 2026-03-02T09:00:00Z).")
    defaults: dict[str, str] = Field(default_factory=dict, description="Fields every mention gets unless it sets them.")
    mentions: list[MentionInput] = Field(default_factory=list)
    polls: list[PollInput] = Field(default_factory=list)
    expect: list[Checkpoint] = Field(min_length=1)

    @model_validator(mode="after")
    def _defaults_known(self) -> RuleTest:
        allowed = {"platform", "author", "watch", "watch_kind", "thread", "in_reply_to", "lang", "url"}
        unknown = set(self.defaults) - allowed
        if unknown:
            raise ValueError(f"defaults: unknown field(s) {', '.join(sorted(unknown))} "
                             f"(allowed: {', '.join(sorted(allowed))})")
        return self


class RuleTestFile(Strict):
    rule_files: list[str] = Field(min_length=1, description="Rule files or directories, relative to this file.")
    tests: list[RuleTest] = Field(min_length=1)


@dataclass
class RuleTestOutcome:
    file: str
    name: str
    line: int | None
    failures: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures


def find_test_files(paths: Iterable[str | Path]) -> list[Path]:
    """The test files named, or found (recursively, sorted) in the directories named."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob("*") if p.name.endswith(TEST_SUFFIXES)))
        else:
            found.append(path)
    return found


class RuleTestRunner:
    """Loads test files and runs them; one VADER scorer is shared across every test."""

    def __init__(self, scorer: SentimentScorer | None = None) -> None:
        self._scorer = scorer

    @property
    def scorer(self) -> SentimentScorer:
        if self._scorer is None:
            self._scorer = SentimentScorer()
        return self._scorer

    def load(self, path: Path) -> tuple[RuleTestFile, RuleSet, Any]:
        """Validate a test file and the rules it names; raise ConfigError with every problem."""
        spec, tree = load_file(RuleTestFile, path)
        missing = [p for p in spec.rule_files if not (path.parent / p).exists()]
        if missing:
            line, col = position(tree, ("rule_files",))
            raise ConfigError([Problem(str(path), line, col, f"rule file not found: {m}") for m in missing])
        ruleset = load_rules([path.parent / p for p in spec.rule_files])
        return spec, ruleset, tree

    def run_file(self, path: str | Path) -> list[RuleTestOutcome]:
        path = Path(path)
        spec, ruleset, tree = self.load(path)
        outcomes = []
        for index, test in enumerate(spec.tests):
            line, _ = position(tree, ("tests", index, "name"))
            outcome = RuleTestOutcome(str(path), test.name, line)
            outcome.failures = self.run_test(test, ruleset)
            outcomes.append(outcome)
        return outcomes

    def run_test(self, test: RuleTest, ruleset: RuleSet) -> list[str]:
        """The failures of one test (empty when it passes)."""
        start = (test.start or DEFAULT_START).astimezone(timezone.utc).timestamp()
        known = {r.id for r in ruleset.rules}
        failures = [f"expects rule {e.rule!r}, which the rule files do not define"
                    for cp in test.expect for e in cp.alerts if e.rule not in known]
        if failures:
            return failures
        engine = Engine(ruleset.rules)
        events: list[tuple[float, int, Any]] = [(found[0].ts, 0, found) for found in self._mentions(test, start)]
        for poll in test.polls:
            for i in range(poll.repeat):
                events.append((start + poll.at + i * poll.every, 1, poll))
        events.sort(key=lambda e: (e[0], e[1]))
        sent: list[Alert] = []
        pending = iter(events)
        upcoming = next(pending, None)
        previous = start - 1
        for checkpoint in sorted(test.expect, key=lambda c: c.at):
            until = start + checkpoint.at
            while upcoming is not None and upcoming[0] <= until:
                ts, kind, item = upcoming
                if kind == 0:
                    first, *others = item  # the post as its first watch found it, then as the others did
                    sent.extend(engine.process([first]))
                    for i, other in enumerate(others):
                        before = [(m.watch, m.watch_kind) for m in item[: i + 1]]
                        sent.extend(engine.process_sightings([(other, before)]))
                else:
                    sent.extend(engine.record_poll(item.watch, item.platform, ts, item.ok, item.error,
                                                   item.watch_kind))
                upcoming = next(pending, None)
            sent.extend(engine.advance(until))
            actual = [a for a in sent if previous < a.fired_at_ts <= until]
            failures.extend(_compare(checkpoint, actual, start, previous, until))
            previous = until
        return failures

    def _mentions(self, test: RuleTest, start: float) -> list[list[Mention]]:
        """Each post, as found by its watch and then by each of `also_found_by`."""
        out: list[list[Mention]] = []
        counter = 0
        for item in test.mentions:
            texts = item.texts if item.texts is not None else [item.text or ""]
            n = item.repeat or len(texts)
            for i in range(n):
                counter += 1
                fields = {**test.defaults, **item.model_dump(
                    include={"platform", "author", "watch", "watch_kind", "thread", "in_reply_to", "lang", "url"},
                    exclude_none=True)}
                ts = start + item.at + i * item.every
                data: dict[str, Any] = {"platform": "x", "author": f"user{counter}", **fields,
                                        "id": f"t{counter}", "text": texts[i % len(texts)],
                                        "created_at": format_time(from_ts(ts))}
                data.setdefault("url", f"https://example.test/{data['platform']}/t{counter}")
                m = Mention.from_dict(data)
                if item.compound is not None:
                    c = item.compound
                    m = dataclasses.replace(m, sentiment=Sentiment(c, max(c, 0), 1 - abs(c), max(-c, 0)))
                else:
                    m = dataclasses.replace(m, sentiment=self.scorer.score(m.text))
                out.append([m, *(dataclasses.replace(m, watch=f.watch, watch_kind=f.watch_kind)
                                 for f in item.also_found_by)])
        return out


def _matches(expected: ExpectedAlert, alert: Alert) -> bool:
    if expected.rule != alert.rule or expected.status != alert.status:
        return False
    if expected.severity is not None and expected.severity != alert.severity:
        return False
    if expected.route is not None and expected.route != alert.route:
        return False
    if expected.group is not None and any(alert.group.get(k) != v for k, v in expected.group.items()):
        return False
    if expected.summary_contains is not None and expected.summary_contains.casefold() not in alert.summary.casefold():
        return False
    return True


def _describe_expected(e: ExpectedAlert) -> str:
    parts = [e.rule, e.status]
    if e.severity:
        parts.append(e.severity)
    if e.group:
        parts.append(",".join(f"{k}={v}" for k, v in e.group.items()))
    if e.route:
        parts.append(f"route={e.route}")
    if e.summary_contains:
        parts.append(f"summary~{e.summary_contains!r}")
    return " ".join(parts)


def _describe_actual(a: Alert, start: float) -> str:
    route = f" route={a.route}" if a.route else ""
    return (f"{a.rule} {a.status} {a.severity} {a.group_key}{route} at +{format_span(a.fired_at_ts - start)} "
            f"(#{a.seq}: {a.title})")


def _compare(checkpoint: Checkpoint, actual: list[Alert], start: float, since: float, until: float) -> list[str]:
    left = list(actual)
    missing: list[ExpectedAlert] = []
    for expected in checkpoint.alerts:
        hit = next((a for a in left if _matches(expected, a)), None)
        if hit is None:
            missing.append(expected)
        else:
            left.remove(hit)
    if not missing and not left:
        return []
    span = f"+{format_span(max(since - start, 0))}..+{format_span(until - start)}"
    lines = [f"between {span}:"]
    lines.append("  expected: " + ("; ".join(_describe_expected(e) for e in checkpoint.alerts) or "no alerts"))
    lines.append("  actual:   " + ("; ".join(_describe_actual(a, start) for a in actual) or "no alerts"))
    for e in missing:
        lines.append(f"  missing:  {_describe_expected(e)}")
    for a in left:
        lines.append(f"  unexpected: {_describe_actual(a, start)}")
    return ["\n".join(lines)]
