"""A transaction that fails (full disk, locked file) loses nothing: the batch, tried again, alerts as if new.

The failure here is a real SQLite error inside the real transaction: a trigger that aborts
every insert into the outbox, as a full disk would abort the write.
"""

from __future__ import annotations

import sqlite3
from dataclasses import replace

import pytest

from listener.pipeline import Pipeline
from listener.rules import Engine
from listener.rules.model import MatchRule, ThresholdRule
from listener.sentiment import SentimentScorer
from listener.store import Store

CRISIS = MatchRule.model_validate({"id": "crisis", "kind": "match", "match": {"any": ["want to die"]},
                                   "group_by": ["author"], "resolve_after": "10m", "cooldown": "0s"})
NOISY = ThresholdRule.model_validate({"id": "noisy", "kind": "threshold", "window": "10m", "group_by": ["watch"],
                                      "conditions": ["count >= 4"], "resolve_after": "0s"})


def break_outbox(store: Store) -> None:
    store.db.execute("CREATE TRIGGER disk_full BEFORE INSERT ON outbox BEGIN "
                     "SELECT RAISE(ABORT, 'database or disk is full'); END")


def mend_outbox(store: Store) -> None:
    store.db.execute("DROP TRIGGER disk_full")


def queued(store: Store) -> list[tuple[str, str, int, int]]:
    return [(r.payload["rule"], r.payload["status"], r.alert_seq, r.payload["metrics"]["count"])
            for r in store.pending(limit=1000)]


def test_a_crisis_post_whose_batch_failed_to_commit_still_alerts_once_when_tried_again(tmp_path, make_mention):
    store = Store(tmp_path / "s.db")
    pipeline = Pipeline(store, SentimentScorer(), Engine([CRISIS]))
    post = make_mention("I want to die", at_s=0, author="someone", scored=False)
    break_outbox(store)
    with pytest.raises(sqlite3.IntegrityError, match="disk is full"):
        pipeline.ingest([post], cursor=("x:@metro", "cursor-1"))
    assert store.mention_count() == 0 and store.pending_count() == 0 and store.get_cursor("x:@metro") is None
    mend_outbox(store)
    # The source did not get its cursor committed, so it reads the same post again.
    again = pipeline.ingest([post], cursor=("x:@metro", "cursor-1"))
    assert [(a.status, a.seq) for a in again.alerts] == [("firing", 1)]
    assert queued(store) == [("crisis", "firing", 1, 1)]
    assert store.mention_count() == 1


def test_a_window_does_not_count_a_batch_twice_after_a_failed_commit(tmp_path, make_mention):
    store = Store(tmp_path / "s.db")
    pipeline = Pipeline(store, SentimentScorer(), Engine([NOISY]))
    first = [make_mention("one", at_s=0, watch="metro"), make_mention("two", at_s=10, watch="metro")]
    second = [make_mention("three", at_s=20, watch="metro"), make_mention("four", at_s=30, watch="metro")]
    assert pipeline.ingest(first).alerts == []
    break_outbox(store)
    with pytest.raises(sqlite3.IntegrityError):
        pipeline.ingest(second)  # the 4th mention fired, but the alert could not be stored
    mend_outbox(store)
    assert pipeline.ingest([make_mention("late", at_s=15, watch="other")]).alerts == []
    # Four mentions in the window, not six: the failed batch was not counted.
    fired = pipeline.ingest(second).alerts
    assert [(a.status, a.seq, a.metrics["count"]) for a in fired] == [("firing", 1, 4)]
    assert queued(store) == [("noisy", "firing", 1, 4)]


def test_a_resolution_lost_with_a_failed_tick_is_sent_by_the_next_tick(tmp_path, make_mention):
    store = Store(tmp_path / "s.db")
    pipeline = Pipeline(store, SentimentScorer(), Engine([CRISIS]))
    post = make_mention("I want to die", at_s=0, author="someone", scored=False)
    firing = pipeline.ingest([post]).alerts
    assert [a.status for a in firing] == ["firing"]
    break_outbox(store)
    with pytest.raises(sqlite3.IntegrityError):
        pipeline.tick(post.ts + 900)  # resolve_after 10m: the episode resolves here
    mend_outbox(store)
    resolved = pipeline.tick(post.ts + 960)
    assert [(a.status, a.seq, a.id) for a in resolved] == [("resolved", 2, firing[0].id)]
    assert [(rule, status, seq) for rule, status, seq, _ in queued(store)] == [
        ("crisis", "firing", 1), ("crisis", "resolved", 2)]
    assert pipeline.tick(post.ts + 2000) == []


def test_a_commit_that_fails_at_the_very_end_also_puts_the_engine_back(tmp_path, make_mention):
    """A deferred constraint fails at COMMIT, after everything inside the transaction succeeded."""
    store = Store(tmp_path / "s.db")
    pipeline = Pipeline(store, SentimentScorer(), Engine([CRISIS]))
    post = make_mention("I want to die", at_s=0, author="someone", scored=False)
    firing = pipeline.ingest([post]).alerts
    db = store.db.conn
    db.execute("PRAGMA foreign_keys = ON")
    db.execute("CREATE TABLE parent (id INTEGER PRIMARY KEY)")
    db.execute("CREATE TABLE guard (parent_id INTEGER REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED)")
    db.execute("CREATE TRIGGER fail_at_commit AFTER INSERT ON outbox BEGIN INSERT INTO guard VALUES (42); END")
    with pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY"):
        pipeline.tick(post.ts + 900)  # the resolution is decided, queued, and lost at COMMIT
    db.execute("DROP TRIGGER fail_at_commit")
    resolved = pipeline.tick(post.ts + 960)
    assert [(a.status, a.seq, a.id) for a in resolved] == [("resolved", 2, firing[0].id)]
    assert [(rule, status, seq) for rule, status, seq, _ in queued(store)] == [
        ("crisis", "firing", 1), ("crisis", "resolved", 2)]


def test_a_daemon_restarted_after_any_batch_sends_what_an_unbroken_one_sends(tmp_path):
    """The demo's scenario through the shipped rules, stopped after batch k and resumed from the
    store (snapshot, then windows and baselines refilled), for every k: every alert message queued,
    byte for byte, is what one unbroken run queues."""
    import json as json_

    from listener.paths import DEMO_SCENARIO, SHIPPED_RULES
    from listener.mention import Mention
    from listener.rules import load_rules

    rules = load_rules([SHIPPED_RULES]).rules
    mentions = sorted((Mention.from_dict(json_.loads(line)) for line in DEMO_SCENARIO.read_text().splitlines()
                       if line.strip()), key=lambda m: m.ts)
    batches = [mentions[i : i + 12] for i in range(0, len(mentions), 12)]
    # Every post of the demo is found again, a batch later, by the hashtag watch (and the
    # daniels-lipsync replies by the account watch): sightings must survive a restart too.
    for k in range(len(batches) - 1, 0, -1):
        batches[k] = batches[k] + [
            replace(m, watch="const-daniels", watch_kind="account") if m.watch == "daniels-lipsync"
            else replace(m, watch="metrocares", watch_kind="hashtag")
            for m in batches[k - 1]]
    scorer = SentimentScorer()

    def run(path, stop_after: int | None) -> list[str]:
        store = Store(path)
        pipeline = Pipeline.resume(store, scorer, Engine(rules))
        for k, batch in enumerate(batches):
            if k == stop_after:  # a restart: a new engine from what the store remembers
                store.close()
                store = Store(path)
                pipeline = Pipeline.resume(store, scorer, Engine(rules))
            pipeline.ingest(batch)
            pipeline.tick(batch[-1].ts + 30)
        pipeline.tick(mentions[-1].ts + 86400)
        out = [json_.dumps(r.payload, sort_keys=True) for r in store.pending(limit=10_000)]
        store.close()
        return out

    unbroken = run(tmp_path / "unbroken.db", None)
    assert len(unbroken) >= 6
    for k in range(1, len(batches)):
        assert run(tmp_path / f"restart-{k}.db", k) == unbroken, f"restarted after batch {k}"
