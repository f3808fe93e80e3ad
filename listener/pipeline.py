"""The ingest path shared by the daemon, replays and the demo: dedupe, score, store, evaluate, queue.

Everything one batch causes (new mentions, engine decisions, outbox rows, the engine's state, the
source's cursor) is committed in one SQLite transaction, so a crash never skips posts, loses an
alert, or makes a restarted daemon announce an episode it already announced under a new id.
When that transaction fails (a full disk, a locked file), the engine is put back to the last
committed state before anything else is evaluated, so the batch can be tried again as if for
the first time.
"""

from __future__ import annotations

import json
import math
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Iterator, Sequence

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
    too_old: int = 0  # older than the retention horizon: dropped, see Pipeline.horizon


class Pipeline:
    def __init__(self, store: Store, scorer: SentimentScorer, engine: Engine) -> None:
        self.store = store
        self.scorer = scorer
        self.engine = engine
        # The daemon sets this to "now minus store.retention_days". A mention older than that may
        # have been stored and pruned already, so dedupe cannot recognise it: taking it would alert
        # again on a post the comms team heard about a month ago (a thread re-read by a post
        # watch, a feed that keeps old entries). Replays leave it unset.
        self.horizon: Callable[[], float] | None = None
        self._saved_state: str | None = None  # the engine's snapshot as last committed
        self._ahead = False  # the engine moved on in a transaction that did not commit

    @classmethod
    def resume(cls, store: Store, scorer: SentimentScorer, engine: Engine, *,
               now_ts: float | None = None) -> Pipeline:
        """A pipeline that carries on from what `store` remembers.

        The engine gets back its open episodes and cooldowns from the last committed snapshot,
        then its windows are refilled from the stored mentions of the last `max_window_s()`
        before `now_ts` (default: the snapshot's own clock). A fresh store starts from nothing.
        """
        pipeline = cls(store, scorer, engine)
        snapshot = store.load_engine_state()
        if snapshot is not None:
            engine.restore(snapshot)
            pipeline._saved_state = json.dumps(snapshot, sort_keys=True)
        clock = engine.now_ts if now_ts is None else now_ts
        if math.isfinite(clock) and engine.max_window_s() > 0:
            since = clock - engine.max_window_s()
            engine.warm(store.mentions_since(since), store.sightings_since(since))
        return pipeline

    def ingest(self, mentions: Sequence[Mention], cursor: tuple[str, str] | None = None) -> IngestResult:
        """Store and evaluate the mentions not seen before; commit `cursor` (source, value) with them."""
        received, too_old = len(mentions), 0
        if self.horizon is not None:
            cutoff = self.horizon()
            kept = [m for m in mentions if m.ts >= cutoff]
            too_old, mentions = len(mentions) - len(kept), kept
        self._catch_up()
        new = self.store.new_mentions(mentions)
        scored = sorted(self.scorer.score_mentions(new), key=lambda m: m.ts)
        with self._committing():
            self.store.insert_mentions(scored)
            alerts = self.engine.process(scored)
            # Posts found before by another watch (or twice in this batch): they count there too.
            first = {id(m) for m in new}
            again = self.store.resightings([m for m in mentions if id(m) not in first])
            if again:
                self.store.record_sightings(again)
                alerts += self.engine.process_sightings(again)
            if alerts:
                self.store.enqueue(a.to_payload() for a in alerts)
            state = self._save_state()
            if cursor is not None:
                self.store.set_cursor(*cursor)
        self._saved_state = state
        return IngestResult(received=received, new=scored, alerts=alerts, too_old=too_old)

    def tick(self, now_ts: float) -> list[Alert]:
        """Advance the engine's clock (windows empty, episodes resolve) and queue what that causes."""
        self._catch_up()
        with self._moving():
            alerts = self.engine.advance(now_ts)
        return self.queue(alerts)

    def record_poll(self, watch: str | None, platform: str, ts: float, ok: bool, error: str | None = None,
                    watch_kind: str | None = None) -> list[Alert]:
        """Tell the engine how a poll went (for flatline rules) and queue what that causes."""
        self._catch_up()
        with self._moving():
            alerts = self.engine.record_poll(watch, platform, ts, ok, error, watch_kind)
        return self.queue(alerts)

    def queue(self, alerts: list[Alert]) -> list[Alert]:
        """Put alerts decided outside a batch (a poll outcome, a rule reload) in the outbox, with the state."""
        self._catch_up()
        with self._committing():
            if alerts:
                self.store.enqueue(a.to_payload() for a in alerts)
            state = self._save_state()
        self._saved_state = state
        return alerts

    @contextmanager
    def _committing(self) -> Iterator[None]:
        """The store's transaction; if it does not commit, the engine is marked as ahead of the store."""
        with self._moving(), self.store.transaction():
            yield

    @contextmanager
    def _moving(self) -> Iterator[None]:
        """The engine moves on inside; if that fails half-way, it is marked as ahead of the store."""
        try:
            yield
        except BaseException:
            self._ahead = True
            raise

    def _catch_up(self) -> None:
        """After a failed transaction, put the engine back to the last committed state, as a restart would.

        The engine had taken the batch (windows counted it, episodes opened and were thought
        announced) but the store kept none of it: trying the batch again on that engine would
        count it twice and, worse, never send the first message of an episode it opened. The
        snapshot last committed and the mentions stored before it are the truth.
        """
        if not self._ahead:
            return
        engine = self.engine
        engine.reset()
        if self._saved_state is not None:
            engine.restore(json.loads(self._saved_state))
        if math.isfinite(engine.now_ts) and engine.max_window_s() > 0:
            since = engine.now_ts - engine.max_window_s()
            engine.warm(self.store.mentions_since(since), self.store.sightings_since(since))
        self._ahead = False

    def _save_state(self) -> str:
        """Write the engine's snapshot when it changed; returns it (remembered after the commit)."""
        state = json.dumps(self.engine.snapshot(), sort_keys=True)
        if state != self._saved_state:
            self.store.save_engine_state(state)
        return state
