"""Bluesky Jetstream: the WebSocket stream of new posts, filtered here to the Bluesky watches.

Real-time and free of search limits, but it sees every post on the network, so matching is
done locally: mention facets and replies naming our accounts' DIDs, hashtags, phrases, and
replies to watched posts. The stream's `time_us` is the cursor; after a restart or a dropped
connection it resumes a few seconds before it (the store drops the repeats). Jetstream keeps
about 36 hours: a longer outage leaves a gap. Its events name authors by DID only; the handles
people know them by are looked up on the public AppView (`app.bsky.actor.getProfiles`, 25 at a
time, remembered), and a post keeps its DID when that cannot be done within a couple of seconds.

The daemon runs it as one more task next to the poll scheduler:

    stream = JetstreamStream(config.sources.bluesky, session, config.watches)
    tg.create_task(stream.run(
        on_batch=lambda b: ingest(b.mentions, cursor=(JETSTREAM_KEY, b.next_cursor)),
        get_cursor=lambda: store.get_cursor(JETSTREAM_KEY)))
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import re
import time
from dataclasses import dataclass, replace
from typing import Any, Awaitable, Callable, Sequence

import aiohttp

from listener.errors import MentionError, SourceError
from listener.mention import Mention
from listener.sources.base import Batch, SourceHealth, Watch
from listener.sources.bluesky import POST_COLLECTION, mention_from_record, post_uri
from listener.sources.http import Clock, HttpClient, Sleep
from listener.sources.settings import BlueskySettings

log = logging.getLogger(__name__)
JETSTREAM_KEY = Watch.job_key("bluesky", "jetstream")
COMMIT_EVERY_S = 10.0  # store the cursor this often even when nothing matched
PROFILES_PER_CALL = 25  # app.bsky.actor.getProfiles takes at most 25 actors
NAMING_TIMEOUT_S = 2.0  # a batch never waits longer than this for its authors' handles
NAMING_PAUSE_S = 60.0  # after a failed look-up, authors keep their DIDs this long before trying again
MAX_NAMES = 50_000  # handles remembered (the oldest are forgotten first)


@dataclass(frozen=True)
class _Matcher:
    watch: Watch
    dids: frozenset[str] = frozenset()
    handles: frozenset[str] = frozenset()
    tags: frozenset[str] = frozenset()
    phrase: re.Pattern[str] | None = None
    roots: frozenset[str] = frozenset()

    def matches(self, did: str, record: dict[str, Any], text: str) -> bool:
        if self.roots:
            reply = record.get("reply") or {}
            return (reply.get("root") or {}).get("uri") in self.roots
        features = [
            f
            for facet in record.get("facets") or []
            if isinstance(facet, dict)
            for f in facet.get("features") or []
            if isinstance(f, dict)
        ]
        if self.dids:
            if any(f.get("did") in self.dids for f in features):
                return True
            reply = record.get("reply") or {}
            for part in ("parent", "root"):
                uri = (reply.get(part) or {}).get("uri") or ""
                if uri.removeprefix("at://").split("/", 1)[0] in self.dids and did not in self.dids:
                    return True
            return any(f"@{h}" in text for h in self.handles)
        if self.tags:
            found = {str(f.get("tag", "")).casefold() for f in features} | {
                str(t).casefold() for t in record.get("tags") or []
            }
            return bool(found & self.tags) or any(re.search(rf"#{re.escape(t)}\b", text) for t in self.tags)
        return bool(self.phrase and self.phrase.search(text))


class JetstreamStream:
    """Listens to Jetstream and hands batches of matching posts to `on_batch`."""

    def __init__(
        self,
        settings: BlueskySettings,
        session: aiohttp.ClientSession,
        watches: Sequence[Watch],
        *,
        clock: Clock = time.time,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.settings = settings
        self.session = session
        self.clock = clock
        self.sleep = sleep
        self.http = HttpClient("bluesky", session, settings, clock=clock, sleep=sleep)
        self.health = SourceHealth(JETSTREAM_KEY)
        self.connects = 0
        self._dids: dict[str, str] = {}
        self._handles: dict[str, str] = {}  # did -> handle (or the did itself: asked, no profile)
        self._naming_paused_until = 0.0
        self._watches: list[Watch] = []
        self._matchers: list[_Matcher] | None = None
        self.update(watches)

    def update(self, watches: Sequence[Watch]) -> None:
        """Follow a new watch list; takes effect at the next message, without reconnecting."""
        self._watches = [w for w in watches if any(p == "bluesky" for p, _ in w.jobs())]
        self._matchers = None

    async def run(
        self,
        on_batch: Callable[[Batch], Awaitable[None]],
        get_cursor: Callable[[], str | None],
        on_status: Callable[[bool, str | None], None] | None = None,
    ) -> None:
        """Listen until cancelled; reconnect with jittered exponential backoff.

        `on_status(ok, error)` is told of each failed connection and each batch handed over,
        for the health endpoint and the flatline rule (as the scheduler's `on_poll`).
        """
        failures = 0
        while True:
            try:
                await self._listen(on_batch, get_cursor, on_status)
                error = "stream closed by the server"
            except (aiohttp.ClientError, asyncio.TimeoutError, SourceError, ValueError) as exc:
                error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            failures = (
                0 if self.health.last_success_ts and self.clock() - self.health.last_success_ts < 60 else failures
            )
            failures += 1
            self.health.last_error_ts, self.health.last_error = self.clock(), error
            self.health.consecutive_failures = failures
            delay = random.uniform(0.5, 1.0) * min(self.settings.jetstream.max_backoff_s, 2.0**failures)
            self.health.backoff_until_ts = self.clock() + delay
            log.warning("jetstream: %s; reconnecting in %.1fs", error, delay)
            if on_status:
                on_status(False, error)
            await self.sleep(delay)

    def subscribe_url(self, cursor: str | None) -> str:
        url = f"{self.settings.jetstream.url.rstrip('/')}/subscribe?wantedCollections={POST_COLLECTION}"
        if cursor and cursor.isdigit():
            url += f"&cursor={max(0, int(cursor) - int(self.settings.jetstream.rewind_s * 1_000_000))}"
        return url

    async def _listen(
        self,
        on_batch: Callable[[Batch], Awaitable[None]],
        get_cursor: Callable[[], str | None],
        on_status: Callable[[bool, str | None], None] | None,
    ) -> None:
        matchers = await self._build_matchers()
        url = self.subscribe_url(get_cursor())
        async with self.session.ws_connect(url, heartbeat=30.0, max_msg_size=4 * 1024 * 1024) as ws:
            self.connects += 1
            log.info("jetstream: connected to %s", url.split("?", 1)[0])
            pending: list[Mention] = []
            last_time_us: int | None = None
            last_flush = self.clock()
            committed: int | None = None
            while True:
                try:
                    msg = await ws.receive(timeout=self.settings.jetstream.flush_s)
                except asyncio.TimeoutError:
                    msg = None
                if msg is not None:
                    if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING):
                        return
                    if msg.type == aiohttp.WSMsgType.ERROR:
                        raise aiohttp.ClientError(str(ws.exception()))
                    if msg.type == aiohttp.WSMsgType.TEXT:
                        if self._matchers is None:
                            matchers = await self._build_matchers()
                        time_us, mention = self._event(msg.data, matchers)
                        if time_us is not None:
                            last_time_us = time_us
                        if mention is not None:
                            pending.append(mention)
                now = self.clock()
                if last_time_us is None or now - last_flush < self.settings.jetstream.flush_s:
                    continue
                if pending or (last_time_us != committed and now - last_flush >= COMMIT_EVERY_S):
                    if pending:
                        pending = await self._named(pending)
                    await on_batch(Batch(pending, str(last_time_us)))
                    self.health.last_success_ts, self.health.consecutive_failures = now, 0
                    self.health.mentions_total += len(pending)
                    if on_status:
                        on_status(True, None)
                    pending, last_flush, committed = [], now, last_time_us

    def _event(self, raw: str | bytes, matchers: list[_Matcher]) -> tuple[int | None, Mention | None]:
        try:
            event = json.loads(raw)
        except ValueError:
            log.warning("jetstream: a frame that is not JSON was skipped")
            return None, None
        if not isinstance(event, dict):
            return None, None
        time_us = event.get("time_us") if isinstance(event.get("time_us"), int) else None
        commit = event.get("commit")
        if (
            event.get("kind") != "commit"
            or not isinstance(commit, dict)
            or commit.get("operation") != "create"
            or commit.get("collection") != POST_COLLECTION
            or not isinstance(commit.get("record"), dict)
        ):
            return time_us, None
        did, record = str(event.get("did", "")), commit["record"]
        text = str(record.get("text") or "")
        folded = text.casefold()
        for matcher in matchers:
            if matcher.matches(did, record, folded):
                uri = f"at://{did}/{POST_COLLECTION}/{commit.get('rkey')}"
                try:
                    return time_us, mention_from_record(uri, record, matcher.watch, author=did)
                except MentionError as exc:
                    log.warning("jetstream: post %s skipped: %s", uri, exc)
                    return time_us, None
        return time_us, None

    async def _named(self, mentions: list[Mention]) -> list[Mention]:
        """The mentions with their authors' handles in place of DIDs, as far as they can be had now."""
        unknown = list(dict.fromkeys(
            m.author for m in mentions if m.author and m.author.startswith("did:") and m.author not in self._handles
        ))
        if unknown and self.clock() >= self._naming_paused_until:
            try:
                await asyncio.wait_for(self._look_up_handles(unknown), NAMING_TIMEOUT_S)
            except (asyncio.TimeoutError, SourceError) as exc:
                self._naming_paused_until = self.clock() + NAMING_PAUSE_S
                log.warning("jetstream: cannot look up authors' handles (%s); posts keep their DIDs for %gs",
                            exc or type(exc).__name__, NAMING_PAUSE_S)
        handles = self._handles
        return [replace(m, author=handles[m.author]) if m.author in handles else m for m in mentions]

    async def _look_up_handles(self, dids: list[str]) -> None:
        for start in range(0, len(dids), PROFILES_PER_CALL):
            chunk = dids[start : start + PROFILES_PER_CALL]
            body = await self.http.get_json(f"{self.settings.public_url}/xrpc/app.bsky.actor.getProfiles",
                                            params=[("actors", did) for did in chunk])
            found = {}
            for profile in body.get("profiles", []) if isinstance(body, dict) else []:
                if isinstance(profile, dict) and isinstance(profile.get("handle"), str):
                    found[profile.get("did")] = profile["handle"]
            for did in chunk:
                handle = found.get(did)
                # "handle.invalid": the account's handle no longer verifies; its DID is the better name.
                self._handles[did] = handle if handle and handle != "handle.invalid" else did
            while len(self._handles) > MAX_NAMES:
                del self._handles[next(iter(self._handles))]

    async def _build_matchers(self) -> list[_Matcher]:
        matchers: list[_Matcher] = []
        for watch in self._watches:
            target = dict(watch.jobs()).get("bluesky", "").strip()
            if watch.kind == "account":
                handle = target.lstrip("@").casefold()
                matchers.append(_Matcher(watch, dids=frozenset({await self._did(handle)}), handles=frozenset({handle})))
            elif watch.kind == "hashtag":
                matchers.append(_Matcher(watch, tags=frozenset({target.lstrip("#").casefold()})))
            elif watch.kind == "post":
                uri = post_uri(target)
                actor = uri.removeprefix("at://").split("/", 1)[0]
                if not actor.startswith("did:"):
                    uri = uri.replace(actor, await self._did(actor), 1)
                matchers.append(_Matcher(watch, roots=frozenset({uri})))
            else:
                phrase = re.compile(rf"(?<!\w){re.escape(target.casefold())}(?!\w)")
                matchers.append(_Matcher(watch, phrase=phrase))
        self._matchers = matchers
        return matchers

    async def _did(self, handle: str) -> str:
        if handle.startswith("did:"):
            return handle
        if handle not in self._dids:
            body = await self.http.get_json(
                f"{self.settings.public_url}/xrpc/com.atproto.identity.resolveHandle", params=[("handle", handle)]
            )
            if not isinstance(body, dict) or not str(body.get("did", "")).startswith("did:"):
                raise SourceError("bluesky", f"cannot resolve handle {handle}")
            self._dids[handle] = body["did"]
        return self._dids[handle]
