"""A fake Instagram Graph API: hashtag search and recent media, own media, tags, comments with replies.

Tokens travel in the query string; a bad one is an OAuthException with code 190. Usage is
reported as percentages in X-App-Usage and X-Business-Use-Case-Usage, and throttling is an
error with code 4 and an estimated time to regain access, as Meta does it.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from aiohttp import web

from fakes.base import FakePlatform, Quota
from listener.secrets import Secret
from listener.sources.base import Watch
from listener.sources.instagram import InstagramSource
from listener.sources.settings import InstagramSettings

TOKEN = "EAAGfakeLongLivedUserToken"
OUR_USER = "17841400000000001"
VERSION = "/v24.0"


def stamp(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S+0000")


def oauth_error(message: str, code: int, status: int = 400, **extra: Any) -> web.Response:
    return web.json_response(
        {
            "error": {
                "message": message,
                "type": "OAuthException",
                "code": code,
                "fbtrace_id": "AbCdEfGh123XyZ",
                **extra,
            }
        },
        status=status,
    )


@dataclass
class Media:
    id: str
    caption: str
    created_ts: float
    hashtag: str | None = None
    owner: str | None = None  # OUR_USER for our own posts
    tagged_us: bool = False
    comments: list[dict[str, Any]] = field(default_factory=list)

    def json(self, fields: str) -> dict[str, Any]:
        body = {
            "id": self.id,
            "caption": self.caption,
            "media_type": "IMAGE",
            "comments_count": len(self.comments),
            "like_count": 87,
            "permalink": f"https://www.instagram.com/p/C{self.id[-8:]}/",
            "timestamp": stamp(self.created_ts),
        }
        if "username" in fields and self.tagged_us:
            body["username"] = "local_resident_22"
        return {k: v for k, v in body.items() if k in fields.split(",") or k == "id"}


class FakeInstagram(FakePlatform):
    platform = "instagram"
    catchup = 120  # 50 per page
    listing_path = f"{VERSION}/17843857450040591/recent_media"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.media: list[Media] = []
        self.hashtags = {"metropolice": "17843857450040591", "hacktps": "17843857450040592"}
        self.hashtag_searches: list[str] = []
        self.t0 = self.clock()
        r = self.app.router
        r.add_get(f"{VERSION}/ig_hashtag_search", self.hashtag_search)
        r.add_get(f"{VERSION}/{{node}}/recent_media", self.recent_media)
        r.add_get(f"{VERSION}/{{node}}/media", self.own_media)
        r.add_get(f"{VERSION}/{{node}}/tags", self.tags)
        r.add_get(f"{VERSION}/{{node}}/comments", self.comments)

    def watch(self) -> Watch:
        return Watch(id="metropolice-ig", kind="hashtag", targets={"instagram": "metropolice"}, interval=3600)

    def source(self, session: Any, **settings: Any) -> InstagramSource:
        os.environ["LISTENER_TEST_IG_TOKEN"] = TOKEN
        values: dict[str, Any] = {
            "base_url": self.base_url + VERSION,
            "user_id": OUR_USER,
            "access_token": Secret(env="LISTENER_TEST_IG_TOKEN"),
            **settings,
        }
        return InstagramSource(InstagramSettings(**values), session, clock=self.clock, sleep=self.clock.sleep)

    def source_with_wrong_credentials(self, session: Any) -> InstagramSource:
        os.environ["LISTENER_TEST_IG_WRONG"] = "EAAGexpiredToken"
        return self.source(session, access_token=Secret(env="LISTENER_TEST_IG_WRONG"))

    def secrets(self) -> list[str]:
        return [TOKEN, "EAAGexpiredToken"]

    def new_media(self, caption: str, **kwargs: Any) -> Media:
        n = self.next_seq()
        media = Media(f"179123456789{n:05d}", caption, self.t0 + n, **kwargs)
        self.media.append(media)
        return media

    def comment(self, media: Media, text: str, parent: str | None = None) -> str:
        n = self.next_seq()
        item = {
            "id": f"178900112233{n:05d}",
            "text": text,
            "timestamp": stamp(self.t0 + n),
            "username": f"resident_{n}",
            "like_count": 1,
        }
        if parent is None:
            media.comments.append(item)
        else:
            top = next(c for c in media.comments if c["id"] == parent)
            top.setdefault("replies", []).append(item | {"parent_id": parent})
        return item["id"]

    def publish(self, n: int = 1) -> list[str]:
        return [
            self.new_media(f"Safety fair with #metropolice today ({self._seq + 1})", hashtag="metropolice").id
            for _ in range(n)
        ]

    # -- the API ----------------------------------------------------------------------

    def rate_headers(self, quota: Quota) -> dict[str, str]:
        used = round(100 * (quota.limit - max(0, quota.remaining)) / quota.limit)
        regain = 0 if quota.remaining > 0 else max(1, math.ceil((quota.reset_ts - self.clock()) / 60))
        return {
            "X-App-Usage": json.dumps({"call_count": used, "total_cputime": 5, "total_time": 5}),
            "X-Business-Use-Case-Usage": json.dumps(
                {
                    OUR_USER: [
                        {
                            "type": "instagram",
                            "call_count": used,
                            "total_cputime": 5,
                            "total_time": 5,
                            "estimated_time_to_regain_access": regain,
                        }
                    ]
                }
            ),
        }

    def too_many(self, wait_s: float) -> web.Response:
        return oauth_error("(#4) Application request limit reached", 4, status=403, is_transient=True)

    def server_error(self, status: int) -> web.Response:
        return oauth_error(
            "An unexpected error has occurred. Please retry your request later.", 2, status=status, is_transient=True
        )

    def _token_problem(self, request: web.Request) -> web.Response | None:
        token = request.query.get("access_token")
        if not token:
            return oauth_error("An active access token must be used to query information about the current user.", 2500)
        if token != TOKEN:
            return oauth_error("Error validating access token: Session has expired.", 190, error_subcode=463)
        return None

    def _paged(self, request: web.Request, items: list[dict[str, Any]], limit_max: int = 50) -> web.Response:
        limit = min(int(request.query.get("limit", "25")), limit_max)
        start = int(request.query.get("after", "0") or 0)
        page = items[start : start + limit]
        paging: dict[str, Any] = {"cursors": {"before": str(start), "after": str(start + limit)}}
        if start + limit < len(items):
            rest = "&".join(f"{k}={v}" for k, v in request.query.items() if k != "after")
            paging["next"] = f"{self.base_url}{request.path}?{rest}&after={start + limit}"
        return web.json_response({"data": page, "paging": paging})

    async def hashtag_search(self, request: web.Request) -> web.Response:
        if (problem := self._token_problem(request)) is not None:
            return problem
        if request.query.get("user_id") != OUR_USER:
            return oauth_error("(#100) Missing or invalid user_id", 100)
        q = request.query.get("q", "").lower()
        self.hashtag_searches.append(q)
        if q not in self.hashtags:
            return oauth_error("(#24) The requested hashtag is not supported", 24)
        return web.json_response({"data": [{"id": self.hashtags[q]}]})

    async def recent_media(self, request: web.Request) -> web.Response:
        if (problem := self._token_problem(request)) is not None:
            return problem
        tag = next((t for t, i in self.hashtags.items() if i == request.match_info["node"]), None)
        fields = request.query.get("fields", "id")
        items = [
            m.json(fields) for m in sorted(self.media, key=lambda m: m.created_ts, reverse=True) if m.hashtag == tag
        ]
        return self._paged(request, items)

    async def own_media(self, request: web.Request) -> web.Response:
        if (problem := self._token_problem(request)) is not None:
            return problem
        fields = request.query.get("fields", "id")
        mine = [
            m.json(fields)
            for m in sorted(self.media, key=lambda m: m.created_ts, reverse=True)
            if m.owner == request.match_info["node"]
        ]
        return self._paged(request, mine)

    async def tags(self, request: web.Request) -> web.Response:
        if (problem := self._token_problem(request)) is not None:
            return problem
        fields = request.query.get("fields", "id")
        return self._paged(request, [m.json(fields) for m in self.media if m.tagged_us])

    async def comments(self, request: web.Request) -> web.Response:
        if (problem := self._token_problem(request)) is not None:
            return problem
        media = next((m for m in self.media if m.id == request.match_info["node"]), None)
        if media is None:
            return oauth_error("Unsupported get request. Object with ID does not exist", 100, error_subcode=33)
        items = [c | ({"replies": {"data": c["replies"]}} if c.get("replies") else {}) for c in media.comments]
        return self._paged(request, items)
