"""Mastodon: hashtag timelines, mentions (notifications) or an account's statuses, search, post context.

Timelines page forward with `min_id` (the items right after the stored id), following the
`rel="prev"` link, so a long downtime is caught up page by page across polls with no gap.
Content is sanitized HTML: it becomes plain text with the content warning first.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from datetime import datetime
from typing import Any, Mapping, Sequence
from urllib.parse import urlparse

import aiohttp

from listener.errors import MentionError, SourceError, SourceUnavailableError
from listener.mention import Mention
from listener.sources.base import Batch, Watch, dump_cursor, load_cursor, watch_fields
from listener.sources.http import Clock, HttpClient, Quota, Sleep, to_float
from listener.sources.settings import MastodonSettings
from listener.sources.text import html_to_text, strip_emoji_codes

log = logging.getLogger(__name__)
PLATFORM = "mastodon"
PAGE_SIZE = 40
_LINK = re.compile(r'<([^>]+)>\s*;\s*rel="([^"]+)"')


def mastodon_quota(headers: Mapping[str, str], now: float) -> Quota | None:
    """X-RateLimit-* with the reset as an ISO 8601 time."""
    remaining = to_float(headers.get("X-RateLimit-Remaining"))
    reset = headers.get("X-RateLimit-Reset")
    if remaining is None or not reset:
        return None
    try:
        reset_ts = datetime.fromisoformat(reset.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None
    return Quota(remaining, to_float(headers.get("X-RateLimit-Limit")), reset_ts)


def links(header: str | None) -> dict[str, str]:
    return {rel: url for url, rel in _LINK.findall(header or "")}


def id_key(value: str) -> tuple[int, str]:
    """Mastodon ids are strings; compare them as numbers when they are digits."""
    return (int(value), "") if value.isdigit() else (-1, value)


def status_text(status: Mapping[str, Any]) -> str:
    body = strip_emoji_codes(html_to_text(status.get("content") or ""))
    warning = strip_emoji_codes(status.get("spoiler_text") or "")
    return f"{warning}\n\n{body}".strip() if warning else body


def mention_from_status(status: Mapping[str, Any], watch: Watch, thread: str | None = None) -> Mention:
    # A boost carries the boosted post: that is what people said.
    s = status.get("reblog") or status
    account = s.get("account") or {}
    return Mention.from_dict(
        {
            "platform": PLATFORM,
            "id": s.get("uri") or s.get("id"),  # ids differ per instance; the uri is global
            "url": s.get("url") or s.get("uri"),
            "author": account.get("acct"),
            "text": status_text(s),
            "lang": s.get("language"),
            "created_at": s.get("created_at"),
            "in_reply_to": s.get("in_reply_to_id"),
            "thread": thread,
            "metrics": {
                "likes": s.get("favourites_count", 0),
                "reposts": s.get("reblogs_count", 0),
                "replies": s.get("replies_count", 0),
            },
            **watch_fields(watch),
        }
    )


class MastodonSource:
    """Polls one Mastodon instance."""

    platform = PLATFORM

    def __init__(
        self,
        settings: MastodonSettings,
        session: aiohttp.ClientSession,
        *,
        clock: Clock = time.time,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.settings = settings
        self.http = HttpClient(PLATFORM, session, settings, quota=mastodon_quota, clock=clock, sleep=sleep)
        token = settings.access_token.read() if settings.access_token else None
        self._auth = {"Authorization": f"Bearer {token}"} if token else {}
        self._host = urlparse(settings.base_url).hostname or ""
        self._me: str | None = None
        self._account_ids: dict[str, str] = {}

    async def fetch(self, watch: Watch, target: str, cursor: str | None) -> Batch:
        state = load_cursor(cursor)
        value = target.strip()
        if watch.kind == "post":
            return await self._context(watch, value, state)
        if watch.kind == "hashtag":
            path, params = f"/api/v1/timelines/tag/{value.lstrip('#')}", [("limit", str(PAGE_SIZE))]
            return await self._page_forward(watch, path, params, state, lambda item: (item["id"], item))
        if watch.kind == "query":
            self._need_token("query watches (status search)")
            params = [("q", value), ("type", "statuses"), ("limit", str(PAGE_SIZE))]
            return await self._page_forward(
                watch, "/api/v2/search", params, state, lambda item: (item["id"], item), key="statuses"
            )
        acct = self._normalise(value)
        if self._auth and acct == await self._own_acct():
            params = [("types[]", "mention"), ("limit", str(PAGE_SIZE))]
            return await self._page_forward(
                watch, "/api/v1/notifications", params, state, lambda item: (item["id"], item["status"])
            )
        # Someone else's account (or no token): its public statuses.
        account_id = await self._account_id(acct)
        params = [("limit", str(PAGE_SIZE))]
        return await self._page_forward(
            watch, f"/api/v1/accounts/{account_id}/statuses", params, state, lambda item: (item["id"], item)
        )

    def _need_token(self, what: str) -> None:
        if not self._auth:
            raise SourceError(PLATFORM, f"{what} need sources.mastodon.access_token")

    def _normalise(self, acct: str) -> str:
        acct = acct.strip().lstrip("@")
        user, _, domain = acct.partition("@")
        return user if domain in ("", self._host) else acct

    async def _own_acct(self) -> str:
        if self._me is None:
            body = await self.http.get_json("/api/v1/accounts/verify_credentials", headers=self._auth)
            if not isinstance(body, dict) or not isinstance(body.get("acct"), str):
                raise SourceUnavailableError(PLATFORM, "verify_credentials answer without acct")
            self._me = body["acct"]
        return self._me

    async def _account_id(self, acct: str) -> str:
        if acct not in self._account_ids:
            body = await self.http.get_json("/api/v1/accounts/lookup", params=[("acct", acct)], headers=self._auth)
            if not isinstance(body, dict) or not isinstance(body.get("id"), str):
                raise SourceUnavailableError(PLATFORM, "accounts/lookup answer without id")
            self._account_ids[acct] = body["id"]
        return self._account_ids[acct]

    async def _page_forward(
        self,
        watch: Watch,
        path: str,
        params: list[tuple[str, str]],
        state: dict[str, Any],
        item_status: Any,
        key: str | None = None,
    ) -> Batch:
        newest: str | None = state.get("min_id")
        if newest is None and state.get("started"):
            # An earlier poll found nothing: everything there now is new, newest page first.
            return await self._page_back(watch, path, params, item_status, key)
        statuses: list[Mapping[str, Any]] = []
        # The first poll takes the newest page only: a new watch does not backfill history.
        pages = self.settings.max_pages if newest else 1
        url: str = path
        query: list[tuple[str, str]] | None = params + ([("min_id", newest)] if newest else [])
        for _ in range(pages):
            resp = await self.http.request("GET", url, params=query, headers=self._auth)
            items = self._items(resp.json(), path, key)
            pairs = self._pairs(items, path, item_status)
            for paging_id, status in pairs:
                if newest is None or id_key(str(paging_id)) > id_key(newest):
                    newest = str(paging_id)
                statuses.append(status)
            prev = links(resp.headers.get("Link")).get("prev")
            # A short page is the last one: saves a request against the 300 per 15 min paging limit.
            if len(items) < PAGE_SIZE or not newest:
                break
            if prev:
                url, query = prev, None
            else:
                url, query = path, params + [("min_id", newest)]
        # An empty first poll still leaves a cursor, so a burst before the next poll is read whole.
        return Batch(self._mentions(watch, statuses), dump_cursor({"min_id": newest} if newest else {"started": True}))

    async def _page_back(self, watch: Watch, path: str, params: list[tuple[str, str]], item_status: Any,
                         key: str | None) -> Batch:
        """Everything there is, newest page first, following `rel="next"` (older) for up to max_pages."""
        newest: str | None = None
        statuses: list[Mapping[str, Any]] = []
        url: str = path
        query: list[tuple[str, str]] | None = params
        for _ in range(self.settings.max_pages):
            resp = await self.http.request("GET", url, params=query, headers=self._auth)
            items = self._items(resp.json(), path, key)
            for paging_id, status in self._pairs(items, path, item_status):
                if newest is None or id_key(str(paging_id)) > id_key(newest):
                    newest = str(paging_id)
                statuses.append(status)
            older = links(resp.headers.get("Link")).get("next")
            if len(items) < PAGE_SIZE or not older:
                break
            url, query = older, None
        return Batch(self._mentions(watch, statuses), dump_cursor({"min_id": newest} if newest else {"started": True}))

    @staticmethod
    def _items(body: Any, path: str, key: str | None) -> list[Any]:
        items = body.get(key) if key and isinstance(body, dict) else body
        if not isinstance(items, list):
            raise SourceUnavailableError(PLATFORM, f"{path}: expected a list of items")
        return items

    @staticmethod
    def _pairs(items: list[Any], path: str, item_status: Any) -> list[tuple[Any, Mapping[str, Any]]]:
        try:
            return [item_status(item) for item in items]
        except (KeyError, TypeError):
            raise SourceUnavailableError(PLATFORM, f"{path}: items without id or status") from None

    async def _context(self, watch: Watch, target: str, state: dict[str, Any]) -> Batch:
        status_id = target.rstrip("/").rsplit("/", 1)[-1]
        if not status_id.isdigit():
            raise SourceError(PLATFORM, f"a post watch needs a status id or URL, got {target!r}")
        body = await self.http.get_json(f"/api/v1/statuses/{status_id}/context", headers=self._auth)
        replies = body.get("descendants") if isinstance(body, dict) else None
        if not isinstance(replies, list):
            raise SourceUnavailableError(PLATFORM, "context answer without descendants")
        newest: str | None = state.get("min_id")
        fresh = [
            s
            for s in replies
            if isinstance(s, dict)
            and isinstance(s.get("id"), str)
            and (newest is None or id_key(s["id"]) > id_key(newest))
        ]
        for s in fresh:
            if newest is None or id_key(s["id"]) > id_key(newest):
                newest = s["id"]
        return Batch(self._mentions(watch, fresh, target), dump_cursor({"min_id": newest}) if newest else None)

    def _mentions(
        self, watch: Watch, statuses: Sequence[Mapping[str, Any]], thread: str | None = None
    ) -> list[Mention]:
        out: list[Mention] = []
        for status in statuses:
            try:
                out.append(mention_from_status(status, watch, thread))
            except (MentionError, AttributeError, TypeError) as exc:
                log.warning("mastodon: %s: status skipped: %s", watch.id, exc)
        return out
