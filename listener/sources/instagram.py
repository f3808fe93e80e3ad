"""Instagram Graph API: comments on our own media, media we are tagged in, hashtag recent media.

There is no `since` parameter anywhere: each watch remembers the ids it has seen. Hashtag ids
are looked up once and kept in the cursor, because an account may search at most 30 distinct
hashtags per rolling 7 days. Usage comes as percentages in X-App-Usage and
X-Business-Use-Case-Usage; calling while throttled extends the block, so we stop early.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any, Mapping

import aiohttp

from listener.errors import MentionError, SourceError, SourceUnavailableError
from listener.mention import Mention
from listener.sources.base import Batch, Watch, bounded_seen, dump_cursor, load_cursor, watch_fields
from listener.sources.http import Clock, HttpClient, Quota, Response, Sleep
from listener.sources.settings import InstagramSettings

log = logging.getLogger(__name__)
PLATFORM = "instagram"
THROTTLE_CODES = frozenset({4, 17, 32, 613, 80002})
USAGE_WINDOW_S = 600.0  # pace over this much of Meta's rolling hour
MEDIA_FIELDS = "id,caption,media_type,comments_count,like_count,permalink,timestamp"
COMMENT_FIELDS = "id,text,timestamp,username,like_count,parent_id,replies{id,text,timestamp,username,like_count}"
HASHTAG_SEEN_S = 48 * 3600  # recent_media covers 24 h; keep ids a while longer


def _usage(headers: Mapping[str, str]) -> tuple[float, float]:
    """Highest usage percentage in the usage headers, and the minutes until access returns."""
    worst, regain_min = 0.0, 0.0
    try:
        app = json.loads(headers.get("X-App-Usage") or "{}")
        worst = max([worst] + [float(v) for v in app.values() if isinstance(v, (int, float))])
        buc = json.loads(headers.get("X-Business-Use-Case-Usage") or "{}")
        for entries in buc.values():
            for entry in entries:
                worst = max([worst] + [float(entry.get(k, 0)) for k in ("call_count", "total_cputime", "total_time")])
                regain_min = max(regain_min, float(entry.get("estimated_time_to_regain_access", 0)))
    except (ValueError, TypeError, AttributeError):
        pass  # unreadable usage headers must not fail a poll that succeeded
    return worst, regain_min


def instagram_quota(headers: Mapping[str, str], now: float) -> Quota | None:
    if "X-App-Usage" not in headers and "X-Business-Use-Case-Usage" not in headers:
        return None
    worst, regain_min = _usage(headers)
    reset = now + (regain_min * 60 if regain_min else USAGE_WINDOW_S)
    return Quota(remaining=max(0.0, 100.0 - worst), limit=100.0, reset_ts=reset)


def _error(body: Any) -> dict[str, Any]:
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, dict) else {}


def throttle_wait(resp: Response) -> float | None:
    """Throttling arrives as an error code, often with HTTP 400 or 403, not always a 429."""
    if resp.status < 400:
        return None
    try:
        code = _error(json.loads(resp.body)).get("code")
    except ValueError:
        return None
    if code not in THROTTLE_CODES:
        return None
    _, regain_min = _usage(resp.headers)
    return regain_min * 60 if regain_min else 900.0


class InstagramSource:
    """Polls the Instagram Graph API for one professional account."""

    platform = PLATFORM

    def __init__(
        self,
        settings: InstagramSettings,
        session: aiohttp.ClientSession,
        *,
        clock: Clock = time.time,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.http = HttpClient(PLATFORM, session, settings, quota=instagram_quota, clock=clock, sleep=sleep)
        self._token = settings.access_token.read() or ""
        self._hashtag_ids: dict[str, str] = {}

    async def fetch(self, watch: Watch, target: str, cursor: str | None) -> Batch:
        state = load_cursor(cursor)
        seen: dict[str, float] = dict(state.get("seen") or {})
        value = target.strip()
        if watch.kind == "query":
            raise SourceError(PLATFORM, "Instagram has no keyword search: use hashtag, account or post watches")
        if watch.kind == "hashtag":
            tag = value.lstrip("#").lower()
            hashtag_id = state.get("hashtag_id") or await self._hashtag_id(tag)
            mentions = await self._hashtag_media(watch, hashtag_id, seen, first=not state)
            floor = self.clock() - HASHTAG_SEEN_S
            return Batch(mentions, dump_cursor({"hashtag_id": hashtag_id, "seen": bounded_seen(seen, floor_ts=floor)}))
        if watch.kind == "post":
            mentions = await self._comments(watch, value, None, seen)
        else:
            mentions = await self._account(watch, value or self.settings.user_id, seen)
        return Batch(mentions, dump_cursor({"seen": bounded_seen(seen)}))

    async def _get(self, path: str, params: list[tuple[str, str]]) -> dict[str, Any]:
        # Graph API tokens go in the query; HttpClient keeps queries out of errors and logs.
        resp = await self.http.request(
            "GET",
            path,
            params=params + [("access_token", self._token)],
            ok=(200, 400, 401, 403),
            rate_limit_wait=throttle_wait,
        )
        body = resp.json()
        if resp.status != 200:
            error = _error(body)
            if error.get("code") == 190:
                raise SourceError(PLATFORM, f"access token expired or invalid: {error.get('message', '')}")
            raise SourceError(PLATFORM, f"HTTP {resp.status}: {error.get('message', 'unknown error')}")
        if not isinstance(body, dict):
            raise SourceUnavailableError(PLATFORM, f"{path.split('?')[0]}: expected an object")
        return body

    async def _pages(self, path: str, params: list[tuple[str, str]], pages: int) -> list[dict[str, Any]]:
        """Follow paging.next (which carries its own query) for at most `pages` pages."""
        items: list[dict[str, Any]] = []
        url: str = path
        query: list[tuple[str, str]] | None = params
        for _ in range(pages):
            body = await self._get(url, query) if query is not None else await self._get_next(url)
            data = body.get("data")
            if not isinstance(data, list):
                raise SourceUnavailableError(PLATFORM, "answer without a data list")
            items.extend(d for d in data if isinstance(d, dict))
            following = (body.get("paging") or {}).get("next")
            if not following or not data:
                break
            url, query = following, None
        return items

    async def _get_next(self, url: str) -> dict[str, Any]:
        # paging.next already holds the token and every parameter.
        resp = await self.http.request("GET", url, ok=(200,), rate_limit_wait=throttle_wait)
        body = resp.json()
        if not isinstance(body, dict):
            raise SourceUnavailableError(PLATFORM, "paging answer is not an object")
        return body

    async def _hashtag_id(self, tag: str) -> str:
        if tag in self._hashtag_ids:
            return self._hashtag_ids[tag]
        if len(self._hashtag_ids) >= self.settings.max_hashtags:
            raise SourceError(
                PLATFORM,
                f"not searching #{tag}: {self.settings.max_hashtags} hashtags already used "
                "(Instagram allows 30 per account per 7 days)",
            )
        body = await self._get("/ig_hashtag_search", [("user_id", self.settings.user_id), ("q", tag)])
        data = body.get("data")
        if not isinstance(data, list) or not data or not isinstance(data[0], dict) or "id" not in data[0]:
            raise SourceError(PLATFORM, f"no hashtag id for #{tag}")
        self._hashtag_ids[tag] = str(data[0]["id"])
        return self._hashtag_ids[tag]

    async def _hashtag_media(
        self, watch: Watch, hashtag_id: str, seen: dict[str, float], *, first: bool
    ) -> list[Mention]:
        params = [("user_id", self.settings.user_id), ("fields", MEDIA_FIELDS), ("limit", "50")]
        media = await self._pages(f"/{hashtag_id}/recent_media", params, 1 if first else self.settings.max_pages)
        return self._media_mentions(watch, media, seen)

    async def _account(self, watch: Watch, user_id: str, seen: dict[str, float]) -> list[Mention]:
        own = await self._pages(
            f"/{user_id}/media", [("fields", "id,permalink,timestamp"), ("limit", str(self.settings.recent_media))], 1
        )
        mentions: list[Mention] = []
        for media in own[: self.settings.recent_media]:
            mentions += await self._comments(watch, str(media.get("id")), media.get("permalink"), seen)
        tagged = await self._pages(f"/{user_id}/tags", [("fields", MEDIA_FIELDS + ",username"), ("limit", "50")], 1)
        return mentions + self._media_mentions(watch, tagged, seen)

    async def _comments(
        self, watch: Watch, media_id: str, permalink: str | None, seen: dict[str, float]
    ) -> list[Mention]:
        comments = await self._pages(
            f"/{media_id}/comments", [("fields", COMMENT_FIELDS), ("limit", "50")], self.settings.max_pages
        )
        out: list[Mention] = []
        for comment in comments:
            replies = (comment.get("replies") or {}).get("data") or []
            for item, parent in [(comment, media_id)] + [
                (r, comment.get("id")) for r in replies if isinstance(r, dict)
            ]:
                mention = self._new(
                    seen,
                    watch,
                    item,
                    {
                        "id": item.get("id"),
                        "url": permalink,
                        "author": item.get("username"),
                        "text": item.get("text"),
                        "created_at": item.get("timestamp"),
                        "in_reply_to": item.get("parent_id") or parent,
                        "thread": media_id,
                        "metrics": {"likes": item.get("like_count", 0)},
                    },
                )
                if mention is not None:
                    out.append(mention)
        return out

    def _media_mentions(self, watch: Watch, media: list[dict[str, Any]], seen: dict[str, float]) -> list[Mention]:
        out: list[Mention] = []
        for item in media:
            mention = self._new(
                seen,
                watch,
                item,
                {
                    "id": item.get("id"),
                    "url": item.get("permalink"),
                    "author": item.get("username"),
                    "text": item.get("caption") or "",
                    "created_at": item.get("timestamp"),
                    "thread": item.get("id"),
                    "metrics": {"likes": item.get("like_count", 0), "replies": item.get("comments_count", 0)},
                },
            )
            if mention is not None:
                out.append(mention)
        return out

    def _new(
        self, seen: dict[str, float], watch: Watch, item: dict[str, Any], fields: dict[str, Any]
    ) -> Mention | None:
        key = str(item.get("id"))
        if key in seen:
            return None
        try:
            mention = Mention.from_dict({"platform": PLATFORM, **fields, **watch_fields(watch)})
        except MentionError as exc:
            log.warning("instagram: %s: item %s skipped: %s", watch.id, key, exc)
            seen[key] = self.clock()  # do not report it again every poll
            return None
        seen[key] = mention.ts
        return mention
