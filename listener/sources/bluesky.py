"""Bluesky: searchPosts for hashtags, queries and mentions of an account; getPostThread for a post.

Search needs a session (an app password): created once, cached, refreshed when the access
token expires (refresh tokens rotate on every use, so refreshes are serialised). The cursor is
the newest `indexedAt` seen plus the posts seen in the overlap window; each poll re-searches
`overlap_s` back because search indexing lags.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from datetime import timedelta
from typing import Any, Iterator

import aiohttp

from listener.errors import MentionError, SourceError, SourceUnavailableError
from listener.mention import Mention, format_time, from_ts, parse_time
from listener.sources.base import Batch, TokenKeeper, Watch, dump_cursor, load_cursor, watch_fields
from listener.sources.http import Clock, HttpClient, Sleep, epoch_quota
from listener.sources.settings import BlueskySettings

log = logging.getLogger(__name__)
PLATFORM = "bluesky"
POST_COLLECTION = "app.bsky.feed.post"


def post_url(uri: str, author: str | None = None) -> str:
    """at://did/app.bsky.feed.post/rkey -> its bsky.app page."""
    did, _, rkey = uri.removeprefix("at://").partition(f"/{POST_COLLECTION}/")
    return f"https://bsky.app/profile/{author or did}/post/{rkey}"


def post_uri(target: str) -> str:
    """A post watch's target (at:// URI or bsky.app URL) as an at:// URI."""
    if target.startswith("at://"):
        return target
    marker = "bsky.app/profile/"
    if marker in target and "/post/" in target:
        actor, _, rkey = target.split(marker, 1)[1].partition("/post/")
        return f"at://{actor}/{POST_COLLECTION}/{rkey.strip('/')}"
    raise SourceError(PLATFORM, f"a post watch needs an at:// URI or a bsky.app post URL, got {target!r}")


def mention_from_record(
    uri: str, record: dict[str, Any], watch: Watch, *, author: str, metrics: dict[str, int] | None = None
) -> Mention:
    """A post record (from search, a thread or Jetstream) as a mention; raises MentionError."""
    reply = record.get("reply") or {}
    langs = record.get("langs") or []
    return Mention.from_dict(
        {
            "platform": PLATFORM,
            "id": uri,
            "url": post_url(uri, author),
            "author": author,
            "text": record.get("text"),
            "lang": langs[0] if langs and isinstance(langs[0], str) else None,
            "created_at": record.get("createdAt"),
            "in_reply_to": (reply.get("parent") or {}).get("uri"),
            "thread": (reply.get("root") or {}).get("uri") or uri,
            "metrics": metrics or {},
            **watch_fields(watch),
        }
    )


def mention_from_view(view: dict[str, Any], watch: Watch) -> Mention:
    author = view.get("author") or {}
    metrics = {
        "likes": view.get("likeCount", 0),
        "reposts": view.get("repostCount", 0),
        "replies": view.get("replyCount", 0),
        "quotes": view.get("quoteCount", 0),
    }
    return mention_from_record(
        view["uri"],
        view.get("record") or {},
        watch,
        author=str(author.get("handle") or author.get("did")),
        metrics=metrics,
    )


class BlueskySession:
    """An app-password session: created once, refreshed on expiry, re-created when refresh fails.

    With a `keeper` the rotating refresh token outlives the process: a restarted daemon refreshes
    the session it had instead of logging in again (createSession allows 30 logins per 5 minutes
    and 300 a day per account, which a crash loop would use up).
    """

    def __init__(self, http: HttpClient, identifier: str, password: str, keeper: TokenKeeper | None = None) -> None:
        self.http = http
        self.identifier = identifier
        self._password = password
        self.keeper = keeper
        self._access: str | None = None
        self._refresh: str | None = None
        self._lock = asyncio.Lock()
        self.created = 0
        self.refreshed = 0

    async def token(self) -> str:
        async with self._lock:
            if self._access is None:
                if self._refresh is None:
                    self._refresh = self._kept()
                if self._refresh is None or not await self._refresh_session():
                    await self._create()
            assert self._access is not None
            return self._access

    async def renew(self, stale: str) -> None:
        """The access token `stale` was refused: refresh it (once, however many jobs noticed)."""
        async with self._lock:
            if self._access != stale:
                return  # another job already renewed it
            if self._refresh is None or not await self._refresh_session():
                await self._create()

    async def _refresh_session(self) -> bool:
        resp = await self.http.request(
            "POST",
            "/xrpc/com.atproto.server.refreshSession",
            headers={"Authorization": f"Bearer {self._refresh}"},
            ok=(200, 400, 401),
        )
        if resp.status == 200:
            self._store(resp.json())
            self.refreshed += 1
            return True
        log.info("bluesky: refresh token refused (%s); creating a new session", _xrpc_error(resp.json()))
        self._refresh = None
        return False

    def _kept(self) -> str | None:
        """The refresh token kept by an earlier run for this account, if any."""
        if self.keeper is None:
            return None
        try:
            kept = json.loads(self.keeper.load() or "null")
        except Exception as exc:  # a broken store must not stop the source: it logs in instead
            log.warning("bluesky: cannot read the kept session (%s); logging in", type(exc).__name__)
            return None
        if not isinstance(kept, dict) or kept.get("identifier") != self.identifier:
            return None  # nothing kept, or kept for another account
        return kept["refresh"] if isinstance(kept.get("refresh"), str) else None

    def _keep(self) -> None:
        if self.keeper is None:
            return
        value = None if self._refresh is None else json.dumps({"identifier": self.identifier, "refresh": self._refresh})
        try:
            self.keeper.save(value)
        except Exception as exc:  # the session still works; only the next restart logs in again
            log.warning("bluesky: cannot keep the session for the next start (%s)", type(exc).__name__)

    async def _create(self) -> None:
        # createSession is limited to 30 per 5 min per account: only here, never per poll.
        resp = await self.http.request(
            "POST",
            "/xrpc/com.atproto.server.createSession",
            json_body={"identifier": self.identifier, "password": self._password},
            ok=(200, 400, 401),
        )
        body = resp.json()
        if resp.status != 200:
            self._access = self._refresh = None
            self._keep()
            raise SourceError(PLATFORM, f"login as {self.identifier} refused: {_xrpc_error(body)}")
        self._store(body)
        self.created += 1

    def _store(self, body: Any) -> None:
        if not isinstance(body, dict) or not body.get("accessJwt") or not body.get("refreshJwt"):
            raise SourceUnavailableError(PLATFORM, "session answer without tokens")
        self._access, self._refresh = body["accessJwt"], body["refreshJwt"]
        self._keep()


def _xrpc_error(body: Any) -> str:
    if isinstance(body, dict):
        return f"{body.get('error', '?')}: {body.get('message', '')}".strip(": ")
    return "unknown error"


class BlueskySource:
    """Polls Bluesky search and threads for one or more watches."""

    platform = PLATFORM

    def __init__(
        self,
        settings: BlueskySettings,
        session: aiohttp.ClientSession,
        *,
        clock: Clock = time.time,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.http = HttpClient(PLATFORM, session, settings, quota=epoch_quota("RateLimit"), clock=clock, sleep=sleep)
        password = settings.app_password.read() if settings.app_password else None
        self.session: BlueskySession | None = (
            BlueskySession(self.http, settings.identifier, password) if settings.identifier and password else None
        )

    def keep_session(self, keeper: TokenKeeper) -> None:
        """Keep the login session in `keeper` between runs (see BlueskySession)."""
        if self.session is not None:
            self.session.keeper = keeper

    async def fetch(self, watch: Watch, target: str, cursor: str | None) -> Batch:
        state = load_cursor(cursor)
        if watch.kind == "post":
            views = await self._thread(post_uri(target))
        else:
            views = await self._search(watch, target, state)
        return self._batch(watch, views, state)

    def search_params(self, watch: Watch, target: str) -> list[tuple[str, str]]:
        value = target.strip()
        if watch.kind == "hashtag":
            tag = value.lstrip("#")
            return [("q", f"#{tag}"), ("tag", tag)]
        if watch.kind == "account":
            handle = value.lstrip("@")
            return [("q", handle), ("mentions", handle)]
        return [("q", value)]

    async def _search(self, watch: Watch, target: str, state: dict[str, Any]) -> list[dict[str, Any]]:
        params = self.search_params(watch, target) + [("sort", "latest"), ("limit", "100")]
        since = state.get("since")
        if since:
            start = parse_time(since) - timedelta(seconds=self.settings.overlap_s)
            params.append(("since", format_time(start)))
        # The first poll takes one page: a new watch does not backfill history.
        pages = self.settings.max_pages if since else 1
        posts: list[dict[str, Any]] = []
        page_cursor: str | None = None
        for page in range(pages):
            query = params + ([("cursor", page_cursor)] if page_cursor else [])
            body = await self._call("app.bsky.feed.searchPosts", query)
            got = body.get("posts") if isinstance(body, dict) else None
            if not isinstance(got, list):
                raise SourceUnavailableError(PLATFORM, "searchPosts answer without a posts list")
            posts.extend(got)
            page_cursor = body.get("cursor")
            if not page_cursor or not got:
                break
            if page == pages - 1:
                log.warning("bluesky: %s: catch-up stopped after %d pages; older posts skipped", watch.id, pages)
        return posts

    async def _thread(self, uri: str) -> list[dict[str, Any]]:
        body = await self._call("app.bsky.feed.getPostThread", [("uri", uri), ("depth", "20"), ("parentHeight", "0")])
        thread = body.get("thread") if isinstance(body, dict) else None
        if not isinstance(thread, dict):
            raise SourceUnavailableError(PLATFORM, "getPostThread answer without a thread")
        if "post" not in thread:
            raise SourceError(PLATFORM, f"post {uri} is not available ({thread.get('$type', 'unknown')})")
        return list(_replies(thread))

    async def _call(self, nsid: str, params: list[tuple[str, str]]) -> Any:
        path = f"/xrpc/{nsid}"
        if self.session is None:
            if nsid == "app.bsky.feed.searchPosts":
                raise SourceError(PLATFORM, "search needs sources.bluesky.identifier and app_password")
            return await self.http.get_json(self.settings.public_url + path, params=params)
        for attempt in range(2):
            token = await self.session.token()
            resp = await self.http.request(
                "GET", path, params=params, headers={"Authorization": f"Bearer {token}"}, ok=(200, 400, 401)
            )
            if resp.status == 200:
                return resp.json()
            body = resp.json()
            expired = resp.status == 401 or (
                isinstance(body, dict) and body.get("error") in ("ExpiredToken", "InvalidToken")
            )
            if expired and attempt == 0:
                await self.session.renew(token)
                continue
            raise SourceError(PLATFORM, f"{nsid}: {_xrpc_error(body)}")
        raise AssertionError("unreachable")

    def _batch(self, watch: Watch, views: list[dict[str, Any]], state: dict[str, Any]) -> Batch:
        seen: dict[str, float] = dict(state.get("seen") or {})
        newest = parse_time(state["since"]).timestamp() if state.get("since") else None
        mentions: list[Mention] = []
        for view in views:
            uri = view.get("uri")
            try:
                indexed = parse_time(view.get("indexedAt"), "indexedAt").timestamp()
            except MentionError:
                indexed = None
            if not isinstance(uri, str) or indexed is None:
                log.warning("bluesky: %s: post without uri/indexedAt skipped", watch.id)
                continue
            newest = indexed if newest is None else max(newest, indexed)
            if uri in seen:
                continue
            seen[uri] = indexed
            try:
                mentions.append(mention_from_view(view, watch))
            except (MentionError, KeyError, TypeError) as exc:
                log.warning("bluesky: %s: post %s skipped: %s", watch.id, uri, exc)
        if newest is None:
            # Nothing yet: remember when we started, so that a burst before the next poll is paged through.
            newest = self.clock()
        # Remember only what the next poll's overlap window can return again.
        floor = newest - self.settings.overlap_s
        kept = {u: t for u, t in seen.items() if t >= floor}
        return Batch(mentions, dump_cursor({"since": format_time(from_ts(newest)), "seen": kept}))


def _replies(thread: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for reply in thread.get("replies") or []:
        if isinstance(reply, dict) and isinstance(reply.get("post"), dict):
            yield reply["post"]
            yield from _replies(reply)
