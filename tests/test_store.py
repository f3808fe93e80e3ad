"""The SQLite store: a real file, migrations from empty, deduplication, cursors, outbox."""

from __future__ import annotations

import sqlite3
from dataclasses import replace

import pytest

from listener.errors import StoreError
from listener.store import MIGRATIONS, Store


def test_migrates_an_empty_file_to_the_current_version(tmp_path):
    path = tmp_path / "new.db"
    store = Store(path)
    assert store.schema_version == len(MIGRATIONS)
    assert {"mentions", "cursors", "outbox"} <= set(store.db.table_names())
    assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    store.close()
    # Opening again applies nothing twice.
    again = Store(path)
    assert again.schema_version == len(MIGRATIONS)
    again.close()


def test_a_store_from_the_previous_release_is_upgraded_in_place_keeping_its_data(tmp_path, make_mention):
    path = tmp_path / "old.db"
    store = Store(path)
    kept = make_mention("kept across the upgrade", watch="metro-police", watch_kind="account")
    store.insert_mentions([kept])
    store.set_cursor("x:metropd", "cursor-7")
    store.close()
    # What the release before sessions were kept wrote: schema version 2, no sessions or sightings.
    conn = sqlite3.connect(path)
    conn.execute("DROP TABLE sessions")
    conn.execute("DROP TABLE sightings")
    conn.execute("PRAGMA user_version = 2")
    conn.commit()
    conn.close()
    upgraded = Store(path)
    assert upgraded.schema_version == len(MIGRATIONS) == 4
    assert upgraded.mention_count() == 1 and upgraded.get_cursor("x:metropd") == "cursor-7"
    upgraded.set_session_token("bluesky", '{"identifier": "metropolice.bsky.social", "refresh": "r"}')
    assert upgraded.session_keeper("bluesky").load() is not None
    again = upgraded.resightings([replace(kept, watch="metrocares", watch_kind="hashtag")])
    assert [(m.watch, known) for m, known in again] == [("metrocares", [("metro-police", "account")])]
    upgraded.record_sightings(again)
    upgraded.close()


def test_refuses_a_store_from_a_newer_release(tmp_path):
    path = tmp_path / "future.db"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 5}")
    conn.close()
    with pytest.raises(StoreError, match="newer than this release"):
        Store(path)


def test_refuses_a_file_that_is_not_sqlite(tmp_path):
    path = tmp_path / "junk.db"
    path.write_bytes(b"not a database at all" * 100)
    with pytest.raises(StoreError):
        Store(path)


def test_same_mention_twice_is_stored_once(tmp_path, make_mention):
    store = Store(tmp_path / "s.db")
    a = make_mention("one", id="1")
    b = make_mention("two", id="2")
    assert store.new_mentions([a, b, a]) == [a, b]
    assert store.insert_mentions([a, b]) == 2
    assert store.new_mentions([a, b]) == []
    assert store.insert_mentions([a]) == 0
    assert store.mention_count() == 2
    # The same id on another platform is another mention.
    other = make_mention("one", id="1", platform="bluesky")
    assert store.new_mentions([other]) == [other]


def test_stored_mentions_round_trip(tmp_path, make_mention):
    store = Store(tmp_path / "s.db")
    m = make_mention("text", at_s=30, compound=-0.4, author="a", thread="t", metrics={"likes": 2},
                     extra_field="kept")
    store.insert_mentions([m])
    (back,) = list(store.mentions_since(0))
    assert (back.key, back.text, back.ts, back.author, back.thread) == (m.key, m.text, m.ts, "a", "t")
    assert back.sentiment == m.sentiment
    assert back.metrics == {"likes": 2} and back.extra == {"extra_field": "kept"}


def test_cursor_and_outbox(tmp_path):
    store = Store(tmp_path / "s.db")
    assert store.get_cursor("x:watch") is None
    store.set_cursor("x:watch", "123")
    store.set_cursor("x:watch", "456")
    assert store.get_cursor("x:watch") == "456"
    payload = {"id": "r-1", "seq": 1, "rule": "r", "severity": "high", "status": "firing"}
    assert store.enqueue([payload, dict(payload, seq=2)]) == 2
    assert store.enqueue([payload]) == 0  # the same message is queued once
    rows = store.pending()
    assert [(r.alert_id, r.alert_seq) for r in rows] == [("r-1", 1), ("r-1", 2)]
    store.mark_delivered([rows[0].seq])
    assert [r.alert_seq for r in store.pending()] == [2]
    assert store.pending_count() == 1


def test_transaction_rolls_back_everything(tmp_path, make_mention):
    store = Store(tmp_path / "s.db")
    with pytest.raises(RuntimeError):
        with store.transaction():
            store.insert_mentions([make_mention("x")])
            store.set_cursor("c", "1")
            raise RuntimeError("crash in the middle")
    assert store.mention_count() == 0
    assert store.get_cursor("c") is None


def test_a_mention_older_than_retention_is_not_taken_again_after_pruning(tmp_path, make_mention):
    """A thread re-read a month later must not re-alert on a crisis post already handled."""
    from listener.pipeline import Pipeline
    from listener.rules import Engine
    from listener.rules.model import MatchRule
    from listener.sentiment import SentimentScorer

    rule = MatchRule.model_validate({"id": "crisis", "kind": "match", "match": {"any": ["want to die"]}})
    store = Store(tmp_path / "s.db")
    pipeline = Pipeline(store, SentimentScorer(), Engine([rule]))
    old = make_mention("I want to die", at_s=0, scored=False)
    assert len(pipeline.ingest([old]).alerts) == 1
    # 31 days later: retention pruned it, and a post watch re-reads the thread it is in.
    now = old.ts + 31 * 86400
    store.prune(now - 30 * 86400)
    pipeline.horizon = lambda: now - 30 * 86400
    again = pipeline.ingest([old, make_mention("I want to die too", at_s=31 * 86400, scored=False)])
    fired = [a.samples[0].text for a in again.alerts if a.status == "firing"]
    assert again.too_old == 1 and fired == ["I want to die too"]
    assert store.mention_count() == 1
