"""A fake X API v2: recent search and user mentions with since_id and next tokens, bearer auth.

Errors are RFC 7807 problem documents as X sends them; 429s carry x-rate-limit-* headers
with the reset in epoch seconds.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from aiohttp import web

from fakes.base import FakePlatform, Quota, bearer
from listener.secrets import Secret
from listener.sources.base import Watch
from listener.sources.settings import XSettings
from listener.sources.x import XSource

TOKEN = "AAAAAAAAAAAAAAAAAAAAAFakeBearerToken"
OUR_ID = "1580000000000000999"


@dataclass
class Tweet:
    id: int
    text: str
    author_id: str
    created_ts: float
    mentions_us: bool = False
    conversation_id: int | None = None

    def json(self) -> dict[str, Any]:
        created = datetime.fromtimestamp(self.created_ts, tz=timezone.utc).isoformat(timespec="milliseconds")
        body: dict[str, Any] = {
            "id": str(self.id),
            "text": self.text,
            "author_id": self.author_id,
            "created_at": created.replace("+00:00", "Z"),
            "conversation_id": str(self.conversation_id or self.id),
            "lang": "en",
            "public_metrics": {
                "retweet_count": 2,
                "reply_count": 1,
                "like_count": 40,
                "quote_count": 0,
                "bookmark_count": 1,
                "impression_count": 950,
            },
            "edit_history_tweet_ids": [str(self.id)],
        }
        if self.conversation_id:
            body["referenced_tweets"] = [{"type": "replied_to", "id": str(self.conversation_id)}]
        return body


def problem(status: int, title: str, detail: str, kind: str = "about:blank") -> web.Response:
    return web.json_response(
        {"title": title, "detail": detail, "type": kind, "status": status},
        status=status,
        content_type="application/problem+json",
    )


class FakeX(FakePlatform):
    platform = "x"
    catchup = 250
    listing_path = "/2/tweets/search/recent"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.tweets: list[Tweet] = []
        self.t0 = self.clock()
        self._ids = 1958123456789012345
        r = self.app.router
        r.add_get("/2/tweets/search/recent", self.search_recent)
        r.add_get("/2/users/by/username/{username}", self.user_by_username)
        r.add_get("/2/users/{id}/mentions", self.mentions)

    def watch(self) -> Watch:
        return Watch(id="metropd", kind="hashtag", targets={"x": "MetroPD"}, interval=60)

    def source(self, session: Any, **settings: Any) -> XSource:
        os.environ["LISTENER_TEST_X_TOKEN"] = TOKEN
        values: dict[str, Any] = {
            "base_url": self.base_url,
            "bearer_token": Secret(env="LISTENER_TEST_X_TOKEN"),
            **settings,
        }
        return XSource(XSettings(**values), session, clock=self.clock, sleep=self.clock.sleep)

    def source_with_wrong_credentials(self, session: Any) -> XSource:
        os.environ["LISTENER_TEST_X_WRONG"] = "AAAAwrongBearer"
        return self.source(session, bearer_token=Secret(env="LISTENER_TEST_X_WRONG"))

    def secrets(self) -> list[str]:
        return [TOKEN, "AAAAwrongBearer"]

    def new_tweet(self, text: str, created_ts: float | None = None, **kwargs: Any) -> Tweet:
        n = self.next_seq()
        self._ids += 1000 + n
        created = self.t0 + n if created_ts is None else created_ts
        tweet = Tweet(self._ids, text, f"15800000000000{n:05d}", created, **kwargs)
        self.tweets.append(tweet)
        return tweet

    def publish(self, n: int = 1) -> list[str]:
        return [str(self.new_tweet(f"Great work at the march #MetroPD ({self._seq + 1})").id) for _ in range(n)]

    # -- the API ----------------------------------------------------------------------

    def rate_headers(self, quota: Quota) -> dict[str, str]:
        return {
            "x-rate-limit-limit": str(quota.limit),
            "x-rate-limit-remaining": str(max(0, quota.remaining)),
            "x-rate-limit-reset": f"{quota.reset_ts:.0f}",
        }

    def too_many(self, wait_s: float) -> web.Response:
        return problem(429, "Too Many Requests", "Too Many Requests", "about:blank")

    def _auth(self, request: web.Request) -> web.Response | None:
        if bearer(request) != TOKEN:
            return problem(401, "Unauthorized", "Unauthorized")
        return None

    def _answer(self, request: web.Request, tweets: list[Tweet], page_param: str, max_results: int) -> web.Response:
        q = request.query
        limit = int(q.get("max_results", "10"))
        if not 10 <= limit <= max_results:
            return problem(
                400,
                "Invalid Request",
                f"The `max_results` query parameter value [{limit}] is not between 10 and {max_results}",
                "https://api.x.com/2/problems/invalid-request",
            )
        if "since_id" in q:
            tweets = [t for t in tweets if t.id > int(q["since_id"])]
        tweets = sorted(tweets, key=lambda t: t.id, reverse=True)
        start = int(q.get(page_param, "0") or 0)
        page = tweets[start : start + limit]
        meta: dict[str, Any] = {"result_count": len(page)}
        if page:
            meta |= {"newest_id": str(page[0].id), "oldest_id": str(page[-1].id)}
        if start + limit < len(tweets):
            meta["next_token"] = str(start + limit)
        body: dict[str, Any] = {"meta": meta}
        if page:
            body["data"] = [t.json() for t in page]
            if "author_id" in q.get("expansions", ""):
                body["includes"] = {
                    "users": [
                        {"id": t.author_id, "name": "Alex R", "username": f"user_{t.author_id[-5:]}"} for t in page
                    ]
                }
        return web.json_response(body)

    async def search_recent(self, request: web.Request) -> web.Response:
        if (refused := self._auth(request)) is not None:
            return refused
        query = request.query.get("query")
        if not query:
            return problem(
                400,
                "Invalid Request",
                "The 'query' parameter is required.",
                "https://api.x.com/2/problems/invalid-request",
            )
        words = [w for w in query.split() if not w.startswith("-")]
        matching = [
            t
            for t in self.tweets
            if all(w.lower() in t.text.lower() or w == f"conversation_id:{t.conversation_id}" for w in words)
        ]
        if "-is:retweet" in query:
            matching = [t for t in matching if not t.text.startswith("RT ")]
        return self._answer(request, matching, "next_token", 100)

    async def user_by_username(self, request: web.Request) -> web.Response:
        if (refused := self._auth(request)) is not None:
            return refused
        name = request.match_info["username"]
        if name.lower() != "metropolice":
            return web.json_response(
                {
                    "errors": [
                        {
                            "value": name,
                            "detail": f"Could not find user with username: [{name}].",
                            "title": "Not Found Error",
                            "resource_type": "user",
                            "parameter": "username",
                            "resource_id": name,
                            "type": "https://api.x.com/2/problems/resource-not-found",
                        }
                    ]
                }
            )
        return web.json_response({"data": {"id": OUR_ID, "name": "Metro Police", "username": "MetroPolice"}})

    async def mentions(self, request: web.Request) -> web.Response:
        if (refused := self._auth(request)) is not None:
            return refused
        if request.match_info["id"] != OUR_ID:
            return web.json_response({"meta": {"result_count": 0}})
        return self._answer(request, [t for t in self.tweets if t.mentions_us], "pagination_token", 100)
