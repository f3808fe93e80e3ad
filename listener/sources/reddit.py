"""Reddit: site search and subreddit `new` listings, comment trees for a post, through OAuth.

Anonymous JSON is blocked since mid-2026, so every call carries an OAuth token (client
credentials, or a script app's password grant) and Reddit's required descriptive User-Agent.
Listings are newest first and `before=` breaks on deleted items, so the cursor is the newest
`created_utc` plus the fullnames seen, and paging stops once it reaches older items.
"""

from __future__ import annotations

import asyncio
import html
import logging
import re
import time
from typing import Any, Iterator, Mapping

import aiohttp

from listener.errors import MentionError, SourceError, SourceUnavailableError
from listener.mention import Mention
from listener.sources.base import Batch, Watch, bounded_seen, dump_cursor, load_cursor, watch_fields
from listener.sources.http import Clock, HttpClient, Quota, Sleep, basic_auth, to_float
from listener.sources.settings import RedditSettings

log = logging.getLogger(__name__)
PLATFORM = "reddit"
GONE = frozenset({"[deleted]", "[removed]"})
_SUBREDDIT = re.compile(r"^/?r/([A-Za-z0-9_]{2,21})/?$")
_POST = re.compile(r"(?:/comments/|^)([a-z0-9]{4,12})(?:/|$)")


def reddit_quota(headers: Mapping[str, str], now: float) -> Quota | None:
    """X-Ratelimit-* with the reset in seconds from now."""
    remaining = to_float(headers.get("X-Ratelimit-Remaining"))
    reset = to_float(headers.get("X-Ratelimit-Reset"))
    if remaining is None or reset is None:
        return None
    used = to_float(headers.get("X-Ratelimit-Used"))
    return Quota(remaining, remaining + used if used is not None else None, now + reset)


def mention_from_thing(thing: Mapping[str, Any], watch: Watch) -> Mention | None:
    """A t3 (post) or t1 (comment) as a mention; None for removed ones with nothing left to read."""
    kind, data = thing.get("kind"), thing.get("data") or {}
    if kind == "t3":
        body = html.unescape(data.get("selftext") or "")
        text = html.unescape(data.get("title") or "") + ("" if body in GONE or not body else f"\n\n{body}")
        thread, parent = data.get("name"), None
        metrics = {"likes": data.get("score", 0), "replies": data.get("num_comments", 0)}
    elif kind == "t1":
        text = html.unescape(data.get("body") or "")
        if text in GONE:
            return None
        thread, parent = data.get("link_id"), data.get("parent_id")
        metrics = {"likes": data.get("score", 0)}
    else:
        return None
    author = data.get("author")
    return Mention.from_dict(
        {
            "platform": PLATFORM,
            "id": data.get("name"),
            "url": f"https://www.reddit.com{data['permalink']}" if data.get("permalink") else None,
            "author": None if author in GONE else author,
            "text": text.strip(),
            "created_at": data.get("created_utc"),
            "in_reply_to": parent,
            "thread": thread,
            "metrics": metrics,
            "subreddit": data.get("subreddit"),
            **watch_fields(watch),
        }
    )


def _comment_tree(listing: Any) -> Iterator[Mapping[str, Any]]:
    """Every t1 in a comment listing, replies included (Reddit nests them; "" means none)."""
    if not isinstance(listing, dict):
        return
    for child in (listing.get("data") or {}).get("children") or []:
        if isinstance(child, dict) and child.get("kind") == "t1":
            yield child
            yield from _comment_tree((child.get("data") or {}).get("replies"))


class RedditSource:
    """Polls Reddit's OAuth API."""

    platform = PLATFORM

    def __init__(
        self,
        settings: RedditSettings,
        session: aiohttp.ClientSession,
        *,
        clock: Clock = time.time,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.http = HttpClient(
            PLATFORM, session, settings, quota=reddit_quota, clock=clock, sleep=sleep, user_agent=settings.user_agent
        )
        self._token: str | None = None
        self._token_expires_ts = 0.0
        self._lock = asyncio.Lock()
        self.tokens_fetched = 0

    async def fetch(self, watch: Watch, target: str, cursor: str | None) -> Batch:
        state = load_cursor(cursor)
        seen: dict[str, float] = dict(state.get("seen") or {})
        value = target.strip()
        if watch.kind == "post":
            match = _POST.search(value)
            if not match:
                raise SourceError(PLATFORM, f"a post watch needs a post id or URL, got {value!r}")
            body = await self._get(f"/comments/{match.group(1)}", [("sort", "new"), ("limit", "500")])
            if not isinstance(body, list) or len(body) < 2:
                raise SourceUnavailableError(PLATFORM, "comments answer is not [post, comments]")
            things = list(_comment_tree(body[1]))
        else:
            things = await self._listing(watch, value, state.get("since"))
        mentions: list[Mention] = []
        newest = state.get("since")
        for thing in things:
            data = thing.get("data") or {}
            name, created = data.get("name"), to_float(str(data.get("created_utc")))
            if not isinstance(name, str) or created is None or name in seen:
                continue
            seen[name] = created
            newest = created if newest is None else max(newest, created)
            try:
                mention = mention_from_thing(thing, watch)
            except MentionError as exc:
                log.warning("reddit: %s: %s skipped: %s", watch.id, name, exc)
                continue
            if mention is not None:
                mentions.append(mention)
        if newest is None:
            # Nothing yet: remember when we started, so that a burst before the next poll is paged through.
            newest = self.clock()
        return Batch(mentions, dump_cursor({"since": newest, "seen": bounded_seen(seen, cap=2000)}))

    async def _listing(self, watch: Watch, value: str, since: float | None) -> list[Mapping[str, Any]]:
        sub = _SUBREDDIT.match(value)
        if sub:
            path, params = f"/r/{sub.group(1)}/new", [("limit", "100")]
        else:
            query = value.lstrip("#") if watch.kind == "hashtag" else value.lstrip("@").removeprefix("u/")
            path, params = (
                "/search",
                [("q", query), ("sort", "new"), ("t", "week" if since else "day"), ("limit", "100"), ("type", "link")],
            )
        things: list[Mapping[str, Any]] = []
        after: str | None = None
        pages = self.settings.max_pages if since is not None else 1
        for _ in range(pages):
            body = await self._get(path, params + ([("after", after)] if after else []))
            data = body.get("data") if isinstance(body, dict) else None
            children = data.get("children") if isinstance(data, dict) else None
            if not isinstance(children, list):
                raise SourceUnavailableError(PLATFORM, f"{path}: not a Listing")
            page = [c for c in children if isinstance(c, dict)]
            things.extend(page)
            after = data.get("after") if isinstance(data, dict) else None
            times = [to_float(str((c.get("data") or {}).get("created_utc"))) for c in page]
            oldest = min((t for t in times if t is not None), default=None)
            # Newest first: once a page reaches what we had, the rest is older still.
            if not after or not page or since is None or (oldest is not None and oldest <= since):
                break
        return things

    async def _get(self, path: str, params: list[tuple[str, str]]) -> Any:
        for attempt in range(2):
            token = await self._access_token()
            resp = await self.http.request(
                "GET",
                path,
                params=params + [("raw_json", "1")],
                headers={"Authorization": f"bearer {token}"},
                ok=(200, 401),
            )
            if resp.status == 200:
                return resp.json()
            if attempt == 0:
                await self._expire(token)
        raise SourceError(PLATFORM, f"{path}: the OAuth token was refused twice")

    async def _expire(self, token: str) -> None:
        async with self._lock:
            if self._token == token:
                self._token = None

    async def _access_token(self) -> str:
        async with self._lock:
            if self._token is not None and self.clock() < self._token_expires_ts:
                return self._token
            s = self.settings
            if s.username and s.password:
                form = {"grant_type": "password", "username": s.username, "password": s.password.read() or ""}
            else:
                form = {"grant_type": "client_credentials"}
            resp = await self.http.request(
                "POST",
                f"{s.auth_url}/api/v1/access_token",
                data=form,
                headers={"Authorization": basic_auth(s.client_id, s.client_secret.read() or "")},
                ok=(200, 400, 401),
            )
            body = resp.json() if resp.body else {}
            if resp.status != 200 or not isinstance(body, dict) or not body.get("access_token"):
                reason = body.get("error") if isinstance(body, dict) else None
                raise SourceError(
                    PLATFORM,
                    f"token request refused (HTTP {resp.status}, {reason or 'no token'}): "
                    "check client_id, client_secret and the account",
                )
            self._token = str(body["access_token"])
            # Renew a minute early so a poll never starts with a token about to lapse.
            self._token_expires_ts = self.clock() + float(body.get("expires_in", 3600)) - 60
            self.tokens_fetched += 1
            return self._token
