"""Running a recorded file through the whole path (store, sentiment, rules) in event time."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from listener.alert import Alert
from listener.errors import Problem
from listener.mention import format_time, from_ts
from listener.pipeline import Pipeline
from listener.replay import ReplayReader
from listener.rules.engine import Engine
from listener.rules.model import RuleBase, severity_rank
from listener.sentiment import SentimentScorer
from listener.store import Store


@dataclass
class RuleSummary:
    episodes: int = 0
    messages: int = 0
    first_fired_ts: float | None = None
    max_severity: str | None = None
    history_note: str | None = None  # a baseline rule that lacked history: why it stayed quiet
    open_at_end: int = 0  # episodes still open when the recording ended (their resolution is not in it)


@dataclass
class BacktestResult:
    read: int = 0
    new: int = 0
    skipped: int = 0
    alerts: int = 0
    per_rule: dict[str, RuleSummary] = field(default_factory=dict)
    first_ts: float | None = None
    last_ts: float | None = None

    def summary_lines(self, rules: Iterable[RuleBase]) -> list[str]:
        """Per rule: episodes, messages, the first firing and the worst severity; how noisy it would be."""
        span = ""
        days = 0.0
        if self.first_ts is not None and self.last_ts is not None:
            span = f" from {format_time(from_ts(self.first_ts))} to {format_time(from_ts(self.last_ts))}"
            days = (self.last_ts - self.first_ts) / 86400
        lines = [
            f"{self.read} mentions read ({self.new} new){span}; {self.skipped} bad lines skipped; "
            f"{self.alerts} alert messages"
        ]
        for rule in rules:
            s = self.per_rule.get(rule.id, RuleSummary())
            first = format_time(from_ts(s.first_fired_ts)) if s.first_fired_ts is not None else "-"
            line = f"  {rule.id:<28} {s.episodes:>4} episodes {s.messages:>5} messages  first {first:<20}"
            if s.max_severity:
                line += f"  up to {s.max_severity}"
            if days >= 1 and s.episodes:
                line += f"  ({s.episodes / days:.1f} episodes a day)"
            if s.open_at_end:
                line += f"  {s.open_at_end} still open at the end"
            if not rule.enabled:
                line += "  (disabled)"
            if s.history_note:
                line += f"  quiet for lack of history: {s.history_note}"
            lines.append(line.rstrip())
        return lines


def run_backtest(
    path: str | Path,
    rules: list[RuleBase],
    store_path: str | Path,
    *,
    scorer: SentimentScorer | None = None,
    on_alert: Callable[[Alert], None] | None = None,
    on_problem: Callable[[Problem], None] | None = None,
    batch_size: int = 1000,
) -> tuple[BacktestResult, Store]:
    """Replay `path`; every alert goes to `on_alert` and into the store's outbox. Returns the open store."""
    store = Store(store_path)
    pipeline = Pipeline(store, scorer or SentimentScorer(), Engine(rules))
    reader = ReplayReader(Path(path), on_problem=on_problem)
    result = BacktestResult()
    for batch in reader.batches(batch_size):
        outcome = pipeline.ingest(batch)
        result.new += len(outcome.new)
        for m in outcome.new:
            result.first_ts = m.ts if result.first_ts is None else min(result.first_ts, m.ts)
            result.last_ts = m.ts if result.last_ts is None else max(result.last_ts, m.ts)
        for alert in outcome.alerts:
            result.alerts += 1
            summary = result.per_rule.setdefault(alert.rule, RuleSummary())
            summary.messages += 1
            if summary.max_severity is None or severity_rank(alert.severity) > severity_rank(summary.max_severity):
                summary.max_severity = alert.severity
            if alert.seq == 1:
                summary.episodes += 1
                if summary.first_fired_ts is None:
                    summary.first_fired_ts = alert.fired_at_ts
            if on_alert is not None:
                on_alert(alert)
    result.read = reader.read
    result.skipped = reader.skipped
    for rule in rules:
        note = pipeline.engine.history_note(rule.id)
        if note:
            result.per_rule.setdefault(rule.id, RuleSummary()).history_note = note
        still_open = pipeline.engine.open_episodes(rule.id)
        if still_open:
            result.per_rule.setdefault(rule.id, RuleSummary()).open_at_end = still_open
    return result, store
