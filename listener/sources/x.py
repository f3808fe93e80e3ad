"""X API v2: recent search (hashtags, queries, replies to a post) and an account's mentions timeline.

Polling follows X's documented pattern: ask with `since_id`, remember the first page's
`meta.newest_id`, follow `next_token` with the same `since_id`, and store the new value only
after the last page. Every read is billed, so the first poll of a watch takes one page.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Mapping

import aiohttp

from listener.errors import MentionError, SourceError, SourceUnavailableError
from listener.mention import Mention
from listener.sources.base import Batch, Watch, dump_cursor, load_cursor, watch_fields
from listener.sources.http import Clock, HttpClient, Sleep, epoch_quota
from listener.sources.settings import XSettings

log = logging.getLogger(__name__)
PLATFORM = "x"
FIELDS = [
    (
        "tweet.fields",
        "created_at,author_id,conversation_id,in_reply_to_user_id,referenced_tweets,public_metrics,lang,note_tweet",
    ),
    ("expansions", "author_id"),
    ("user.fields", "username,name"),
]


def mention_from_tweet(tweet: Mapping[str, Any], users: Mapping[str, str], watch: Watch) -> Mention:
    username = users.get(str(tweet.get("author_id")))
    replied = next((r.get("id") for r in tweet.get("referenced_tweets") or [] if r.get("type") == "replied_to"), None)
    metrics = tweet.get("public_metrics") or {}
    long_text = (tweet.get("note_tweet") or {}).get("text")  # `text` is truncated for long posts
    return Mention.from_dict(
        {
            "platform": PLATFORM,
            "id": tweet.get("id"),
            "url": f"https://x.com/{username or 'i/web'}/status/{tweet.get('id')}",
            "author": username,
            "text": long_text or tweet.get("text"),
            "lang": tweet.get("lang"),
            "created_at": tweet.get("created_at"),
            "in_reply_to": replied,
            "thread": tweet.get("conversation_id"),
            "metrics": {
                "likes": metrics.get("like_count", 0),
                "reposts": metrics.get("retweet_count", 0),
                "replies": metrics.get("reply_count", 0),
                "quotes": metrics.get("quote_count", 0),
            },
            **watch_fields(watch),
        }
    )


def _problem(body: Any) -> str:
    """X's error bodies: RFC 7807 problems, or the older errors[] list."""
    if isinstance(body, dict):
        if body.get("title") or body.get("detail"):
            return f"{body.get('title', '')}: {body.get('detail', '')}".strip(": ")
        errors = body.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            return str(errors[0].get("message") or errors[0].get("detail") or errors[0])
    return "unknown error"


class XSource:
    """Polls the X API v2 with an app-only bearer token."""

    platform = PLATFORM

    def __init__(
        self,
        settings: XSettings,
        session: aiohttp.ClientSession,
        *,
        clock: Clock = time.time,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.settings = settings
        self.http = HttpClient(
            PLATFORM,
            session,
            settings,
            quota=epoch_quota("x-rate-limit"),
            clock=clock,
            sleep=sleep,
            default_wait_s=900.0,
        )
        self._auth = {"Authorization": f"Bearer {settings.bearer_token.read() or ''}"}
        self._user_ids: dict[str, str] = {}

    def search_query(self, watch: Watch, target: str) -> str:
        value = target.strip()
        if watch.kind == "hashtag":
            query = f"#{value.lstrip('#')}"
        elif watch.kind == "post":
            query = f"conversation_id:{value.rstrip('/').rsplit('/', 1)[-1]}"
        else:
            query = value
        return f"{query} -is:retweet" if self.settings.exclude_retweets else query

    async def fetch(self, watch: Watch, target: str, cursor: str | None) -> Batch:
        state = load_cursor(cursor)
        since_id: str | None = state.get("since_id")
        # `started`: an earlier poll found nothing, so everything there now is new and may take pages.
        started = bool(since_id or state.get("started"))
        if watch.kind == "account":
            user_id = await self._user_id(target.strip().lstrip("@"))
            path, page_param = f"/2/users/{user_id}/mentions", "pagination_token"
            params = [("max_results", "100")]
        else:
            path, page_param = "/2/tweets/search/recent", "next_token"
            params = [("query", self.search_query(watch, target)), ("max_results", "100")]
        params += FIELDS + ([("since_id", since_id)] if since_id else [])
        pages = self.settings.max_pages if started else 1
        newest: str | None = None
        mentions: list[Mention] = []
        token: str | None = None
        for page in range(pages):
            body = await self._get(path, params + ([(page_param, token)] if token else []))
            meta = body.get("meta") or {}
            if page == 0:
                newest = meta.get("newest_id")
            users = {
                str(u.get("id")): str(u.get("username"))
                for u in (body.get("includes") or {}).get("users") or []
                if isinstance(u, dict)
            }
            for tweet in body.get("data") or []:
                try:
                    mentions.append(mention_from_tweet(tweet, users, watch))
                except (MentionError, AttributeError, TypeError) as exc:
                    log.warning("x: %s: post skipped: %s", watch.id, exc)
            token = meta.get("next_token")
            if not token:
                break
            if page == pages - 1:
                log.warning("x: %s: catch-up stopped after %d pages; older posts skipped", watch.id, pages)
        cursor_out = newest or since_id
        return Batch(mentions, dump_cursor({"since_id": cursor_out} if cursor_out else {"started": True}))

    async def _user_id(self, username: str) -> str:
        if username not in self._user_ids:
            body = await self._get(f"/2/users/by/username/{username}", [("user.fields", "username")])
            data = body.get("data")
            if not isinstance(data, dict) or not data.get("id"):
                raise SourceError(PLATFORM, f"no X account @{username}: {_problem(body)}")
            self._user_ids[username] = str(data["id"])
        return self._user_ids[username]

    async def _get(self, path: str, params: list[tuple[str, str]]) -> dict[str, Any]:
        resp = await self.http.request("GET", path, params=params, headers=self._auth, ok=(200, 400, 401, 403, 404))
        body = resp.json()
        if resp.status != 200:
            raise SourceError(PLATFORM, f"HTTP {resp.status} from {path}: {_problem(body)}")
        if not isinstance(body, dict) or not isinstance(body.get("meta", {}), dict):
            raise SourceUnavailableError(PLATFORM, f"{path}: unexpected answer")
        if body.get("errors") and "data" not in body and "meta" not in body:
            raise SourceError(PLATFORM, f"{path}: {_problem(body)}")
        return body
