"""The SQLite store: mentions (deduplicated; sightings by other watches kept apart), source cursors,
the alert outbox and delivery state.

One writer, WAL mode, numbered forward migrations recorded in `PRAGMA user_version`.
Callers batch their writes inside `transaction()` so a poll cycle is one commit.
"""

from __future__ import annotations

import json
import sqlite3
import time
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import sqlite_utils

from listener.errors import StoreError
from listener.mention import Known, Mention, Sentiment, format_time

Migration = Callable[[sqlite_utils.Database], None]


def _m001_initial(db: sqlite_utils.Database) -> None:
    db.execute(
        """
        CREATE TABLE mentions (
            rowid INTEGER PRIMARY KEY,
            platform TEXT NOT NULL,
            id TEXT NOT NULL,
            url TEXT,
            author TEXT,
            text TEXT NOT NULL,
            lang TEXT,
            created_at TEXT NOT NULL,
            created_ts REAL NOT NULL,
            watch TEXT,
            watch_kind TEXT,
            in_reply_to TEXT,
            thread TEXT,
            metrics TEXT,
            extra TEXT,
            compound REAL,
            pos REAL,
            neu REAL,
            neg REAL,
            ingested_at TEXT NOT NULL,
            UNIQUE (platform, id)
        )
        """
    )
    db.execute("CREATE INDEX mentions_created_ts ON mentions (created_ts)")
    db.execute(
        """
        CREATE TABLE cursors (
            source TEXT PRIMARY KEY,
            value TEXT NOT NULL,
            updated_at TEXT NOT NULL
        )
        """
    )
    db.execute(
        """
        CREATE TABLE outbox (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            alert_id TEXT NOT NULL,
            alert_seq INTEGER NOT NULL,
            rule TEXT NOT NULL,
            severity TEXT NOT NULL,
            status TEXT NOT NULL,
            payload TEXT NOT NULL,
            created_at TEXT NOT NULL,
            delivered_at TEXT,
            attempts INTEGER NOT NULL DEFAULT 0,
            last_error TEXT,
            UNIQUE (alert_id, alert_seq)
        )
        """
    )
    db.execute("CREATE INDEX outbox_pending ON outbox (seq) WHERE delivered_at IS NULL")


def _m002_delivery(db: sqlite_utils.Database) -> None:
    # The engine's snapshot is written in the same transaction as the outbox rows it caused.
    db.execute(
        """
        CREATE TABLE engine_state (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            snapshot TEXT NOT NULL,
            updated_at TEXT NOT NULL
        )
        """
    )
    # Episodes whose latest delivered message is `firing`: what is retained under
    # <prefix>/active/, with who acknowledged them and how often they were re-notified.
    db.execute(
        """
        CREATE TABLE active_alerts (
            alert_id TEXT PRIMARY KEY,
            rule TEXT NOT NULL,
            severity TEXT NOT NULL,
            payload TEXT NOT NULL,
            notified_ts REAL NOT NULL,
            renotify INTEGER NOT NULL DEFAULT 0,
            ack_by TEXT,
            ack_at TEXT,
            ack_note TEXT
        )
        """
    )
    # Sub-second queue time, for the queued -> delivered latency.
    db.execute("ALTER TABLE outbox ADD COLUMN queued_ts REAL")


def _m003_sessions(db: sqlite_utils.Database) -> None:
    # A platform's login session (Bluesky's rotating refresh token), so that a restart refreshes it
    # rather than logging in again: logins are rate limited (Bluesky: 30 per 5 minutes per account).
    db.execute(
        """
        CREATE TABLE sessions (
            key TEXT PRIMARY KEY,
            token TEXT NOT NULL,
            updated_at TEXT NOT NULL
        )
        """
    )


def _m004_sightings(db: sqlite_utils.Database) -> None:
    # A post found again by another watch (an @mention that also carries our campaign hashtag): the
    # mention is stored once, under the watch that found it first; each other watch is a sighting,
    # so that rules on that watch count the post too, also after a restart.
    db.execute(
        """
        CREATE TABLE sightings (
            rowid INTEGER PRIMARY KEY,
            platform TEXT NOT NULL,
            id TEXT NOT NULL,
            watch TEXT NOT NULL,
            watch_kind TEXT,
            created_ts REAL NOT NULL,
            UNIQUE (platform, id, watch),
            FOREIGN KEY (platform, id) REFERENCES mentions (platform, id) ON DELETE CASCADE
        )
        """
    )
    db.execute("CREATE INDEX sightings_created_ts ON sightings (created_ts)")


MIGRATIONS: list[Migration] = [_m001_initial, _m002_delivery, _m003_sessions, _m004_sightings]

_Finders = list[tuple[str | None, str | None]]  # a `Known` being built


@dataclass(frozen=True)
class StoredToken:
    """One session token in the store, under `key`: a `TokenKeeper` for a source."""

    store: Store
    key: str

    def load(self) -> str | None:
        return self.store.get_session_token(self.key)

    def save(self, token: str | None) -> None:
        self.store.set_session_token(self.key, token)


@dataclass(frozen=True)
class OutboxRow:
    seq: int
    alert_id: str
    alert_seq: int
    payload: dict[str, Any]
    attempts: int
    queued_ts: float | None = None


@dataclass(frozen=True)
class ActiveAlert:
    """An episode that is firing, as last delivered (see `Store.record_delivery`)."""

    alert_id: str
    rule: str
    severity: str
    payload: dict[str, Any]
    notified_ts: float
    renotify: int
    ack: dict[str, Any] | None


def _now() -> str:
    return format_time(datetime.now(timezone.utc))


class Store:
    """The daemon's one SQLite file. Not thread-safe: one writer, on the event loop."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        try:
            self.db = sqlite_utils.Database(self.path)
            if self.path != ":memory:":
                self.db.enable_wal()
            # WAL + NORMAL survives application crashes; a power cut may drop the last commits.
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.execute("PRAGMA foreign_keys=ON")
            self.migrate()
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"cannot open store {self.path}: {exc}") from exc
        self._depth = 0

    @property
    def schema_version(self) -> int:
        return int(self.db.execute("PRAGMA user_version").fetchone()[0])

    def migrate(self) -> None:
        """Apply the migrations this file has not seen yet, each in its own transaction."""
        current = self.schema_version
        if current > len(MIGRATIONS):
            raise StoreError(
                f"store {self.path} has schema version {current}, newer than this release knows "
                f"({len(MIGRATIONS)}); upgrade social-listener"
            )
        conn = self.db.conn
        for version, migration in enumerate(MIGRATIONS[current:], start=current + 1):
            # DDL does not open a transaction implicitly in sqlite3's legacy mode: do it here, so a
            # migration that fails half-way leaves the file at the previous version.
            conn.execute("BEGIN IMMEDIATE")
            try:
                migration(self.db)
                conn.execute(f"PRAGMA user_version = {version}")
            except BaseException:
                conn.rollback()
                raise
            conn.commit()

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One commit for everything inside; nested uses join the outer one."""
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        self._depth = 1
        try:
            with self.db.conn:
                yield
        finally:
            self._depth = 0

    # -- mentions -----------------------------------------------------------------

    def new_mentions(self, mentions: Sequence[Mention]) -> list[Mention]:
        """The mentions not stored yet, first occurrence only, in their given order."""
        seen: set[tuple[str, str]] = set()
        unique: list[Mention] = []
        for m in mentions:
            if m.key not in seen:
                seen.add(m.key)
                unique.append(m)
        if not unique:
            return []
        stored: set[tuple[str, str]] = set()
        # Chunk to stay under SQLite's variable limit.
        for start in range(0, len(unique), 400):
            chunk = unique[start : start + 400]
            clause = " OR ".join(["(platform = ? AND id = ?)"] * len(chunk))
            params = [v for m in chunk for v in m.key]
            stored.update(
                (row[0], row[1])
                for row in self.db.execute(f"SELECT platform, id FROM mentions WHERE {clause}", params)
            )
        return [m for m in unique if m.key not in stored]

    def insert_mentions(self, mentions: Iterable[Mention]) -> int:
        """Store scored mentions; one already stored is left as it is. Returns rows added."""
        ingested = _now()
        rows = [
            (
                m.platform, m.id, m.url, m.author, m.text, m.lang, format_time(m.created_at), m.ts,
                m.watch, m.watch_kind, m.in_reply_to, m.thread,
                (json.dumps(m.metrics if type(m.metrics) is dict else dict(m.metrics)) if m.metrics else None),
                (json.dumps(m.extra if type(m.extra) is dict else dict(m.extra)) if m.extra else None),
                *(
                    (m.sentiment.compound, m.sentiment.pos, m.sentiment.neu, m.sentiment.neg)
                    if m.sentiment is not None
                    else (None, None, None, None)
                ),
                ingested,
            )
            for m in mentions
        ]
        with self.transaction():
            before = self.db.conn.total_changes
            self.db.conn.executemany(
                "INSERT OR IGNORE INTO mentions (platform, id, url, author, text, lang, created_at,"
                " created_ts, watch, watch_kind, in_reply_to, thread, metrics, extra, compound, pos,"
                " neu, neg, ingested_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                rows,
            )
            return self.db.conn.total_changes - before

    def prune(self, before_ts: float) -> int:
        """Delete mentions created before a time; returns how many.

        Freed pages are reused by later inserts, so the file stays bounded without a VACUUM.
        (Delivered alert messages are pruned by `prune_delivered`.)
        """
        with self.transaction():
            return int(self.db.execute("DELETE FROM mentions WHERE created_ts < ?", [before_ts]).rowcount)

    def mention_count(self) -> int:
        return int(self.db.execute("SELECT count(*) FROM mentions").fetchone()[0])

    def mentions_since(self, since_ts: float) -> Iterator[Mention]:
        """Stored mentions created at or after `since_ts`, oldest first (to rebuild rule windows)."""
        cursor = self.db.execute(
            f"SELECT {_MENTION_COLUMNS} FROM mentions WHERE created_ts >= ? ORDER BY created_ts, rowid",
            [since_ts],
        )
        for row in cursor:
            yield _mention(row)

    def mention_text(self, platform: str, mention_id: str) -> str | None:
        """The whole text of a stored mention (an alert's example is cut to a length)."""
        row = self.db.execute("SELECT text FROM mentions WHERE platform = ? AND id = ?",
                              [platform, mention_id]).fetchone()
        return None if row is None else str(row[0])

    # -- the same post found by several watches ---------------------------------------

    def resightings(self, mentions: Sequence[Mention]) -> list[tuple[Mention, Known]]:
        """Stored posts that these mentions show found by a watch that had not found them before.

        Each comes back as stored (scored), under the new watch, with the watches that had found it
        before. Call after the batch's new mentions are inserted, so that a post found by two
        watches in one batch is seen too; then `record_sightings()`.
        """
        wanted = [m for m in mentions if m.watch is not None]
        if not wanted:
            return []
        stored: dict[tuple[str, str], Mention] = {}
        known: dict[tuple[str, str], _Finders] = {}
        keys = list(dict.fromkeys(m.key for m in wanted))
        for start in range(0, len(keys), 400):
            chunk = keys[start : start + 400]
            clause = " OR ".join(["(platform = ? AND id = ?)"] * len(chunk))
            params = [v for key in chunk for v in key]
            for row in self.db.execute(f"SELECT {_MENTION_COLUMNS} FROM mentions WHERE {clause}", params):
                m = _mention(row)
                stored[m.key] = m
                known[m.key] = [(m.watch, m.watch_kind)]
            for row in self.db.execute(f"SELECT platform, id, watch, watch_kind FROM sightings WHERE {clause}"
                                       " ORDER BY rowid", params):
                known[(row[0], row[1])].append((row[2], row[3]))
        out: list[tuple[Mention, Known]] = []
        for m in wanted:
            post = stored.get(m.key)
            if post is None or any(w == m.watch for w, _ in known[m.key]):
                continue  # not stored (too old, or a bad row), or this watch had found it already
            out.append((replace(post, watch=m.watch, watch_kind=m.watch_kind), list(known[m.key])))
            known[m.key].append((m.watch, m.watch_kind))
        return out

    def record_sightings(self, sightings: Iterable[tuple[Mention, Known]]) -> None:
        with self.transaction():
            self.db.conn.executemany(
                "INSERT OR IGNORE INTO sightings (platform, id, watch, watch_kind, created_ts) VALUES (?, ?, ?, ?, ?)",
                [(m.platform, m.id, m.watch, m.watch_kind, m.ts) for m, _ in sightings],
            )

    def sightings_since(self, since_ts: float) -> Iterator[tuple[Mention, Known]]:
        """The sightings of posts created at or after `since_ts`, as `resightings()` gave them."""
        rows = self.db.execute(
            f"SELECT s.watch, s.watch_kind, {', '.join('m.' + f for f in _MENTION_FIELDS)} FROM sightings s"
            " JOIN mentions m ON m.platform = s.platform AND m.id = s.id"
            " WHERE s.created_ts >= ? ORDER BY s.platform, s.id, s.rowid",
            [since_ts],
        ).fetchall()
        known: dict[tuple[str, str], _Finders] = {}
        for row in rows:
            post = _mention(row[2:])
            before = known.setdefault(post.key, [(post.watch, post.watch_kind)])
            yield replace(post, watch=row[0], watch_kind=row[1]), list(before)
            before.append((row[0], row[1]))

    # -- login sessions -------------------------------------------------------------

    def session_keeper(self, key: str) -> StoredToken:
        """Where a source keeps its session token between runs (see `sources.base.TokenKeeper`)."""
        return StoredToken(self, key)

    def get_session_token(self, key: str) -> str | None:
        row = self.db.execute("SELECT token FROM sessions WHERE key = ?", [key]).fetchone()
        return None if row is None else str(row[0])

    def set_session_token(self, key: str, token: str | None) -> None:
        with self.transaction():
            if token is None:
                self.db.execute("DELETE FROM sessions WHERE key = ?", [key])
            else:
                self.db.execute(
                    "INSERT INTO sessions (key, token, updated_at) VALUES (?, ?, ?)"
                    " ON CONFLICT (key) DO UPDATE SET token = excluded.token, updated_at = excluded.updated_at",
                    [key, token, _now()],
                )

    # -- cursors ------------------------------------------------------------------

    def get_cursor(self, source: str) -> str | None:
        row = self.db.execute("SELECT value FROM cursors WHERE source = ?", [source]).fetchone()
        return None if row is None else str(row[0])

    def set_cursor(self, source: str, value: str) -> None:
        with self.transaction():
            self.db.execute(
                "INSERT INTO cursors (source, value, updated_at) VALUES (?, ?, ?)"
                " ON CONFLICT (source) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
                [source, value, _now()],
            )

    # -- outbox -------------------------------------------------------------------

    def enqueue(self, payloads: Iterable[dict[str, Any]]) -> int:
        """Add alert payloads to the outbox; a message already queued (same id and seq) is kept once."""
        now, queued_ts = _now(), time.time()
        rows = [
            (p["id"], p["seq"], p["rule"], p["severity"], p["status"], json.dumps(p, ensure_ascii=False), now,
             queued_ts)
            for p in payloads
        ]
        with self.transaction():
            before = self.db.conn.total_changes
            self.db.conn.executemany(
                "INSERT OR IGNORE INTO outbox (alert_id, alert_seq, rule, severity, status, payload, created_at,"
                " queued_ts) VALUES (?,?,?,?,?,?,?,?)",
                rows,
            )
            return self.db.conn.total_changes - before

    def pending(self, limit: int = 100, after_seq: int = 0) -> list[OutboxRow]:
        """Undelivered outbox rows, oldest first."""
        cursor = self.db.execute(
            "SELECT seq, alert_id, alert_seq, payload, attempts, queued_ts FROM outbox"
            " WHERE delivered_at IS NULL AND seq > ? ORDER BY seq LIMIT ?",
            [after_seq, limit],
        )
        return [OutboxRow(r[0], r[1], r[2], json.loads(r[3]), r[4], r[5]) for r in cursor]

    def alert_messages(self, status: str = "firing") -> Iterator[dict[str, Any]]:
        """The alert messages of a status in the outbox (kept there until pruned), oldest first."""
        cursor = self.db.execute("SELECT payload FROM outbox WHERE status = ? ORDER BY seq", [status])
        for row in cursor:
            yield json.loads(row[0])

    def pending_count(self) -> int:
        return int(self.db.execute("SELECT count(*) FROM outbox WHERE delivered_at IS NULL").fetchone()[0])

    def mark_delivered(self, seqs: Sequence[int]) -> None:
        if not seqs:
            return
        with self.transaction():
            self.db.conn.executemany(
                "UPDATE outbox SET delivered_at = ?, attempts = attempts + 1 WHERE seq = ?",
                [(_now(), s) for s in seqs],
            )

    def mark_failed(self, seq: int, error: str) -> None:
        self.mark_failed_many([seq], error)

    def mark_failed_many(self, seqs: Sequence[int], error: str) -> None:
        with self.transaction():
            self.db.conn.executemany(
                "UPDATE outbox SET attempts = attempts + 1, last_error = ? WHERE seq = ?",
                [(error[:500], s) for s in seqs],
            )

    def prune_delivered(self, before_ts: float) -> int:
        """Forget outbox rows delivered before `before_ts` (they only matter for a while, for audits)."""
        cutoff = format_time(datetime.fromtimestamp(before_ts, tz=timezone.utc))
        with self.transaction():
            cursor = self.db.execute(
                "DELETE FROM outbox WHERE delivered_at IS NOT NULL AND delivered_at < ?", [cutoff])
            return cursor.rowcount

    # -- engine state ---------------------------------------------------------------

    def save_engine_state(self, snapshot_json: str) -> None:
        """Keep the engine's latest snapshot; call it inside the transaction that enqueues its alerts."""
        with self.transaction():
            self.db.execute(
                "INSERT INTO engine_state (id, snapshot, updated_at) VALUES (1, ?, ?)"
                " ON CONFLICT (id) DO UPDATE SET snapshot = excluded.snapshot, updated_at = excluded.updated_at",
                [snapshot_json, _now()],
            )

    def load_engine_state(self) -> dict[str, Any] | None:
        row = self.db.execute("SELECT snapshot FROM engine_state WHERE id = 1").fetchone()
        return None if row is None else dict(json.loads(row[0]))

    # -- delivery state: active episodes, acknowledgements, re-notification ----------

    def record_delivery(self, delivered: Sequence[tuple[int, dict[str, Any]]], now_ts: float) -> None:
        """Mark outbox rows delivered and keep `active_alerts` in step, in one commit.

        A `firing` message makes (or updates) its episode's active row, keeping any ack and
        restarting the re-notify count; a `resolved` message removes it.
        """
        if not delivered:
            return
        now = _now()
        with self.transaction():
            conn = self.db.conn
            conn.executemany("UPDATE outbox SET delivered_at = ?, attempts = attempts + 1 WHERE seq = ?",
                             [(now, seq) for seq, _ in delivered])
            for _, p in delivered:
                if p["status"] == "resolved":
                    conn.execute("DELETE FROM active_alerts WHERE alert_id = ?", [p["id"]])
                    continue
                conn.execute(
                    "INSERT INTO active_alerts (alert_id, rule, severity, payload, notified_ts, renotify)"
                    " VALUES (?, ?, ?, ?, ?, 0) ON CONFLICT (alert_id) DO UPDATE SET"
                    " severity = excluded.severity, payload = excluded.payload,"
                    " notified_ts = excluded.notified_ts, renotify = 0",
                    [p["id"], p["rule"], p["severity"], json.dumps(p, ensure_ascii=False), now_ts],
                )

    def active_alerts(self) -> list[ActiveAlert]:
        cursor = self.db.execute(
            "SELECT alert_id, rule, severity, payload, notified_ts, renotify, ack_by, ack_at, ack_note"
            " FROM active_alerts ORDER BY notified_ts, alert_id")
        return [
            ActiveAlert(r[0], r[1], r[2], json.loads(r[3]), r[4], r[5],
                        None if r[7] is None else {"by": r[6], "at": r[7], "note": r[8]})
            for r in cursor
        ]

    def set_ack(self, alert_id: str, by: str, at: str, note: str | None) -> dict[str, Any] | None:
        """Record an acknowledgement; the first one wins. Returns the ack in force, None if not active."""
        with self.transaction():
            self.db.execute(
                "UPDATE active_alerts SET ack_by = ?, ack_at = ?, ack_note = ?"
                " WHERE alert_id = ? AND ack_at IS NULL", [by, at, note, alert_id])
            row = self.db.execute("SELECT ack_by, ack_at, ack_note FROM active_alerts WHERE alert_id = ?",
                                  [alert_id]).fetchone()
        return None if row is None else {"by": row[0], "at": row[1], "note": row[2]}

    def set_renotified(self, alert_id: str, count: int, now_ts: float) -> None:
        with self.transaction():
            self.db.execute("UPDATE active_alerts SET renotify = ?, notified_ts = ? WHERE alert_id = ?",
                            [count, now_ts, alert_id])


_MENTION_FIELDS = ("platform", "id", "url", "author", "text", "lang", "created_ts", "watch", "watch_kind",
                   "in_reply_to", "thread", "metrics", "extra", "compound", "pos", "neu", "neg")
_MENTION_COLUMNS = ", ".join(_MENTION_FIELDS)


def _mention(row: Sequence[Any]) -> Mention:
    """A stored mention from its row (`_MENTION_COLUMNS`)."""
    return Mention(
        platform=row[0], id=row[1], url=row[2], author=row[3], text=row[4], lang=row[5],
        created_at=datetime.fromtimestamp(row[6], tz=timezone.utc), ts=row[6], watch=row[7], watch_kind=row[8],
        in_reply_to=row[9], thread=row[10], metrics=json.loads(row[11]) if row[11] else {},
        extra=json.loads(row[12]) if row[12] else {},
        sentiment=Sentiment(row[13], row[14], row[15], row[16]) if row[13] is not None else None,
    )
