"""A fake Reddit: the OAuth token endpoint, subreddit `new`, search and comment trees on oauth.reddit.com.

Like Reddit since mid-2026 it refuses calls without a bearer token, throttles generic
User-Agents, and reports its quota in X-Ratelimit-* with the reset in seconds from now.
"""

from __future__ import annotations

import base64
import os
import secrets
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from fakes.base import FakePlatform, Quota, bearer
from listener.secrets import Secret
from listener.sources.base import Watch
from listener.sources.reddit import RedditSource
from listener.sources.settings import RedditSettings

CLIENT_ID = "p-jcoLKBynTLew"
CLIENT_SECRET = "gko_LXELoV07ZBNUXrvWZfzE3aI"
USER_AGENT = "linux:social-listener:0.1.0 (by /u/metropolice_comms)"


@dataclass
class Thing:
    kind: str  # t3 or t1
    id: str
    created_utc: float
    subreddit: str
    title: str = ""
    body: str = ""
    author: str = "springfield_local"
    link_id: str | None = None
    parent_id: str | None = None
    replies: list[Thing] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"{self.kind}_{self.id}"

    def json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": self.id,
            "name": self.name,
            "subreddit": self.subreddit,
            "author": self.author,
            "created_utc": self.created_utc,
            "score": 57,
            "edited": False,
        }
        if self.kind == "t3":
            data |= {
                "title": self.title,
                "selftext": self.body,
                "num_comments": len(self.replies),
                "permalink": f"/r/{self.subreddit}/comments/{self.id}/post/",
                "url": "https://example.org/",
            }
        else:
            data |= {
                "body": self.body,
                "link_id": self.link_id,
                "parent_id": self.parent_id,
                "permalink": f"/r/{self.subreddit}/comments/{(self.link_id or '')[3:]}/post/{self.id}/",
                "replies": listing([r.json() for r in self.replies]) if self.replies else "",
            }
        return {"kind": self.kind, "data": data}


def listing(children: list[dict[str, Any]], after: str | None = None) -> dict[str, Any]:
    return {"kind": "Listing", "data": {"after": after, "before": None, "dist": len(children), "children": children}}


class FakeReddit(FakePlatform):
    platform = "reddit"
    catchup = 250
    listing_path = "/r/Springfield/new"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.things: list[Thing] = []
        self.tokens: set[str] = set()
        self.user_agents: list[str] = []
        self.t0 = self.clock()
        r = self.app.router
        r.add_post("/api/v1/access_token", self.access_token)
        r.add_get("/r/{sub}/new", self.new)
        r.add_get("/search", self.search)
        r.add_get("/comments/{article}", self.comments)

    def watch(self) -> Watch:
        return Watch(id="springfield", kind="query", targets={"reddit": "r/Springfield"}, interval=120)

    def source(self, session: Any, **settings: Any) -> RedditSource:
        os.environ["LISTENER_TEST_REDDIT_SECRET"] = CLIENT_SECRET
        values: dict[str, Any] = {
            "base_url": self.base_url,
            "auth_url": self.base_url,
            "client_id": CLIENT_ID,
            "client_secret": Secret(env="LISTENER_TEST_REDDIT_SECRET"),
            "user_agent": USER_AGENT,
            **settings,
        }
        return RedditSource(RedditSettings(**values), session, clock=self.clock, sleep=self.clock.sleep)

    def source_with_wrong_credentials(self, session: Any) -> RedditSource:
        os.environ["LISTENER_TEST_REDDIT_WRONG"] = "not-the-secret"
        return self.source(session, client_secret=Secret(env="LISTENER_TEST_REDDIT_WRONG"))

    def secrets(self) -> list[str]:
        return [CLIENT_SECRET, "not-the-secret"]

    def new_post(self, title: str, body: str = "", sub: str = "Springfield") -> Thing:
        n = self.next_seq()
        thing = Thing("t3", f"1f{n:05x}", self.t0 + n, sub, title=title, body=body)
        self.things.append(thing)
        return thing

    def reply(self, to: Thing, body: str) -> Thing:
        n = self.next_seq()
        link = to.name if to.kind == "t3" else to.link_id
        comment = Thing("t1", f"k{n:05x}", self.t0 + n, to.subreddit, body=body, link_id=link, parent_id=to.name)
        to.replies.append(comment)
        return comment

    def publish(self, n: int = 1) -> list[str]:
        return [
            self.new_post(
                f"Metro Police at the march, thread {self._seq + 1}", "Officers handled it calmly &amp; kindly."
            ).name
            for _ in range(n)
        ]

    # -- the API ----------------------------------------------------------------------

    def rate_headers(self, quota: Quota) -> dict[str, str]:
        return {
            "X-Ratelimit-Used": str(quota.limit - max(0, quota.remaining)),
            "X-Ratelimit-Remaining": f"{max(0, quota.remaining):.1f}",
            "X-Ratelimit-Reset": f"{max(0, quota.reset_ts - self.clock()):.0f}",
        }

    def too_many(self, wait_s: float) -> web.Response:
        return web.Response(
            status=429, text="<html><body><h1>whoa there, pardner!</h1></body></html>", content_type="text/html"
        )

    def counts_toward_quota(self, request: web.Request) -> bool:
        return request.path != "/api/v1/access_token"

    async def access_token(self, request: web.Request) -> web.Response:
        expected = "Basic " + base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
        if request.headers.get("Authorization") != expected:
            return web.json_response({"message": "Unauthorized", "error": 401}, status=401)
        form = await request.post()
        if form.get("grant_type") not in ("client_credentials", "password"):
            return web.json_response({"error": "unsupported_grant_type"})
        token = f"eyJ{secrets.token_hex(12)}"
        self.tokens.add(token)
        return web.json_response({"access_token": token, "token_type": "bearer", "expires_in": 86400, "scope": "*"})

    def _refused(self, request: web.Request) -> web.Response | None:
        agent = request.headers.get("User-Agent", "")
        self.user_agents.append(agent)
        if "(by /u/" not in agent:
            return self.too_many(60)  # generic User-Agents are throttled hard
        if bearer(request) not in self.tokens:
            return web.json_response({"message": "Unauthorized", "error": 401}, status=401)
        return None

    def _listing(self, request: web.Request, things: list[Thing]) -> web.Response:
        things = sorted(things, key=lambda t: t.created_utc, reverse=True)
        limit = min(int(request.query.get("limit", "25")), 100)
        after = request.query.get("after")
        start = 0
        if after:
            names = [t.name for t in things]
            start = names.index(after) + 1 if after in names else len(things)
        page = things[start : start + limit]
        more = page[-1].name if start + limit < len(things) and page else None
        return web.json_response(listing([t.json() for t in page], more))

    async def new(self, request: web.Request) -> web.Response:
        if (refused := self._refused(request)) is not None:
            return refused
        sub = request.match_info["sub"].lower()
        return self._listing(request, [t for t in self.things if t.kind == "t3" and t.subreddit.lower() == sub])

    async def search(self, request: web.Request) -> web.Response:
        if (refused := self._refused(request)) is not None:
            return refused
        q = request.query.get("q", "").lower()
        return self._listing(request, [t for t in self.things if t.kind == "t3" and q in (t.title + t.body).lower()])

    async def comments(self, request: web.Request) -> web.Response:
        if (refused := self._refused(request)) is not None:
            return refused
        post = next((t for t in self.things if t.id == request.match_info["article"]), None)
        if post is None:
            return web.json_response({"message": "Not Found", "error": 404}, status=404)
        return web.json_response([listing([post.json() | {}]), listing([c.json() for c in post.replies])])
