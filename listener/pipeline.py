"""The ingest path shared by the daemon, replays and the demo: dedupe, score, store, evaluate, queue.

Everything one batch causes (new mentions, engine decisions, outbox rows, the source's cursor)
is committed in one SQLite transaction, so a crash never skips posts or alerts twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

from listener.alert import Alert
from listener.mention import Mention
from listener.rules.engine import Engine
from listener.sentiment import SentimentScorer
from listener.store import Store


@dataclass
class IngestResult:
    received: int
    new: list[Mention] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)


class Pipeline:
    def __init__(self, store: Store, scorer: SentimentScorer, engine: Engine) -> None:
        self.store = store
        self.scorer = scorer
        self.engine = engine

    def ingest(self, mentions: Sequence[Mention], cursor: tuple[str, str] | None = None) -> IngestResult:
        """Store and evaluate the mentions not seen before; commit `cursor` (source, value) with them."""
        new = self.store.new_mentions(mentions)
        scored = sorted(self.scorer.score_mentions(new), key=lambda m: m.ts)
        with self.store.transaction():
            self.store.insert_mentions(scored)
            alerts = self.engine.process(scored)
            if alerts:
                self.store.enqueue(a.to_payload() for a in alerts)
            if cursor is not None:
                self.store.set_cursor(*cursor)
        return IngestResult(received=len(mentions), new=scored, alerts=alerts)

    def tick(self, now_ts: float) -> list[Alert]:
        """Advance the engine's clock (windows empty, episodes resolve) and queue what that causes."""
        alerts = self.engine.advance(now_ts)
        if alerts:
            with self.store.transaction():
                self.store.enqueue(a.to_payload() for a in alerts)
        return alerts
