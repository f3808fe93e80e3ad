"""A fake Mastodon instance: tag timelines, notifications, account statuses, search and context.

Paging follows Mastodon: pages newest first; `min_id` returns the items right after it,
`since_id` the newest items above it, `max_id` older ones; a Link header carries absolute
`next` (older) and `prev` (newer) URLs. Entities carry every field the official OpenAPI
schema requires, and the tests validate them against it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from aiohttp import web

from fakes.base import FakePlatform, Quota, bearer
from listener.secrets import Secret
from listener.sources.base import Watch
from listener.sources.mastodon import MastodonSource
from listener.sources.settings import MastodonSettings

HOST = "mastodon.example"
OUR_ACCT = "metropolice"
TOKEN = "user-token-abc123"


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def account(acct: str, account_id: str) -> dict[str, Any]:
    user = acct.split("@")[0]
    return {
        "id": account_id,
        "username": user,
        "acct": acct,
        "display_name": user.title(),
        "locked": False,
        "bot": False,
        "group": False,
        "discoverable": True,
        "indexable": True,
        "created_at": "2023-01-01T00:00:00.000Z",
        "note": "",
        "url": f"https://{HOST}/@{user}",
        "uri": f"https://{HOST}/users/{user}",
        "avatar": f"https://{HOST}/avatars/original/missing.png",
        "avatar_static": f"https://{HOST}/avatars/original/missing.png",
        "header": f"https://{HOST}/headers/original/missing.png",
        "header_static": f"https://{HOST}/headers/original/missing.png",
        "followers_count": 10,
        "following_count": 5,
        "statuses_count": 42,
        "last_status_at": "2026-08-20",
        "emojis": [],
        "fields": [],
    }


@dataclass
class Status:
    id: int
    acct: str
    html: str
    created_ts: float
    tags: list[str] = field(default_factory=list)
    reply_to: int | None = None
    mentions_us: bool = False
    spoiler: str = ""

    def json(self) -> dict[str, Any]:
        user = self.acct.split("@")[0]
        mentions = (
            [{"id": "1", "username": OUR_ACCT, "acct": OUR_ACCT, "url": f"https://{HOST}/@{OUR_ACCT}"}]
            if self.mentions_us
            else []
        )
        return {
            "id": str(self.id),
            "uri": f"https://{HOST}/users/{user}/statuses/{self.id}",
            "url": f"https://{HOST}/@{user}/{self.id}",
            "created_at": iso(self.created_ts),
            "edited_at": None,
            "account": account(self.acct, str(1000 + self.id % 97)),
            "content": self.html,
            "visibility": "public",
            "sensitive": bool(self.spoiler),
            "spoiler_text": self.spoiler,
            "media_attachments": [],
            "application": None,
            "mentions": mentions,
            "tags": [{"name": t.lower(), "url": f"https://{HOST}/tags/{t.lower()}"} for t in self.tags],
            "emojis": [],
            "reblogs_count": 1,
            "favourites_count": 3,
            "replies_count": 0,
            "quotes_count": 0,
            "in_reply_to_id": str(self.reply_to) if self.reply_to else None,
            "in_reply_to_account_id": "1" if self.reply_to else None,
            "reblog": None,
            "poll": None,
            "card": None,
            "language": "en",
            "text": None,
        }


class FakeMastodon(FakePlatform):
    platform = "mastodon"
    catchup = 90  # 40 per page at most
    listing_path = "/api/v1/timelines/tag/"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.statuses: list[Status] = []
        self.notifications: list[tuple[int, Status]] = []
        self.served: list[tuple[str, Any]] = []  # (path, JSON body) of every answer, for schema checks
        self.t0 = self.clock()
        self._ids = 115034567890123456
        r = self.app.router
        r.add_get("/api/v1/timelines/tag/{hashtag}", self.tag_timeline)
        r.add_get("/api/v1/notifications", self.list_notifications)
        r.add_get("/api/v1/accounts/verify_credentials", self.verify_credentials)
        r.add_get("/api/v1/accounts/lookup", self.lookup)
        r.add_get("/api/v1/accounts/{id}/statuses", self.account_statuses)
        r.add_get("/api/v1/statuses/{id}/context", self.context)
        r.add_get("/api/v2/search", self.search)

    # -- test helpers -----------------------------------------------------------------

    def watch(self) -> Watch:
        return Watch(id="metropolice-tag", kind="hashtag", targets={"mastodon": "MetroPolice"}, interval=60)

    def source(self, session: Any, **settings: Any) -> MastodonSource:
        os.environ["LISTENER_TEST_MASTODON_TOKEN"] = TOKEN
        values: dict[str, Any] = {
            "base_url": self.base_url,
            "access_token": Secret(env="LISTENER_TEST_MASTODON_TOKEN"),
            **settings,
        }
        return MastodonSource(MastodonSettings(**values), session, clock=self.clock, sleep=self.clock.sleep)

    def source_with_wrong_credentials(self, session: Any) -> MastodonSource:
        os.environ["LISTENER_TEST_MASTODON_WRONG"] = "revoked-token-999"
        return self.source(session, access_token=Secret(env="LISTENER_TEST_MASTODON_WRONG"))

    def secrets(self) -> list[str]:
        return [TOKEN, "revoked-token-999"]

    def new_status(self, html: str, acct: str = "janedoe", **kwargs: Any) -> Status:
        self._ids += 1 + self.next_seq() % 7  # ids grow, not one by one
        status = Status(self._ids, acct, html, self.t0 + self._seq, **kwargs)
        self.statuses.append(status)
        if status.mentions_us:
            self.notifications.append((5000 + len(self.notifications), status))
        return status

    def publish(self, n: int = 1) -> list[str]:
        made = [
            self.new_status(
                f'<p>Response times from <a href="https://{HOST}/tags/MetroPolice" class="mention '
                f'hashtag" rel="tag">#<span>MetroPolice</span></a> report {self._seq + 1}</p>',
                tags=["MetroPolice"],
            )
            for _ in range(n)
        ]
        return [s.json()["uri"] for s in made]

    # -- the API ----------------------------------------------------------------------

    def rate_headers(self, quota: Quota) -> dict[str, str]:
        reset = datetime.fromtimestamp(quota.reset_ts, tz=timezone.utc).isoformat(timespec="microseconds")
        return {
            "X-RateLimit-Limit": str(quota.limit),
            "X-RateLimit-Remaining": str(max(0, quota.remaining)),
            "X-RateLimit-Reset": reset.replace("+00:00", "Z"),
        }

    def too_many(self, wait_s: float) -> web.Response:
        return web.json_response({"error": "Too many requests"}, status=429)

    def _token_problem(self, request: web.Request, required: bool) -> web.Response | None:
        token = bearer(request)
        if token is None:
            if required:
                return web.json_response({"error": "This method requires an authenticated user"}, status=401)
            return None
        if token != TOKEN:
            return web.json_response({"error": "The access token is invalid"}, status=401)
        return None

    def _json(self, request: web.Request, body: Any, headers: dict[str, str] | None = None) -> web.Response:
        self.served.append((request.path, body))
        return web.json_response(body, headers=headers)

    def _page(self, request: web.Request, items: list[tuple[int, Any]], max_limit: int = 40) -> web.Response:
        """items: (paging id, JSON); answer one page the way Mastodon pages."""
        q = request.query
        limit = min(int(q.get("limit", "20")), max_limit)
        items = sorted(items, key=lambda it: it[0], reverse=True)
        if "max_id" in q:
            items = [it for it in items if it[0] < int(q["max_id"])]
        if "min_id" in q:
            newer = [it for it in items if it[0] > int(q["min_id"])]
            page = newer[-limit:]  # the items right after min_id, still newest first
        else:
            if "since_id" in q:
                items = [it for it in items if it[0] > int(q["since_id"])]
            page = items[:limit]
        headers = {}
        if page:
            base = f"{self.base_url}{request.path}"
            extra = "".join(f"&{k}={v}" for k, v in q.items() if k not in ("max_id", "min_id", "since_id"))
            headers["Link"] = (
                f'<{base}?max_id={page[-1][0]}{extra}>; rel="next", <{base}?min_id={page[0][0]}{extra}>; rel="prev"'
            )
        return self._json(request, [body for _, body in page], headers)

    async def tag_timeline(self, request: web.Request) -> web.Response:
        if (problem := self._token_problem(request, required=False)) is not None:
            return problem
        tag = request.match_info["hashtag"].lower()
        if tag != "metropolice":
            return web.json_response({"error": "Record not found"}, status=404)
        return self._page(request, [(s.id, s.json()) for s in self.statuses if tag in (t.lower() for t in s.tags)])

    async def list_notifications(self, request: web.Request) -> web.Response:
        if (problem := self._token_problem(request, required=True)) is not None:
            return problem
        types = request.query.getall("types[]", [])
        items = [
            (
                nid,
                {
                    "id": str(nid),
                    "type": "mention",
                    "group_key": f"ungrouped-{nid}",
                    "created_at": iso(s.created_ts),
                    "account": account(s.acct, "77"),
                    "status": s.json(),
                },
            )
            for nid, s in self.notifications
            if not types or "mention" in types
        ]
        return self._page(request, items, max_limit=80)

    async def verify_credentials(self, request: web.Request) -> web.Response:
        if (problem := self._token_problem(request, required=True)) is not None:
            return problem
        return self._json(request, account(OUR_ACCT, "1"))

    async def lookup(self, request: web.Request) -> web.Response:
        acct = request.query.get("acct", "")
        if acct not in {s.acct for s in self.statuses} | {OUR_ACCT}:
            return web.json_response({"error": "Record not found"}, status=404)
        return self._json(request, account(acct, "1" if acct == OUR_ACCT else "2"))

    async def account_statuses(self, request: web.Request) -> web.Response:
        wanted = OUR_ACCT if request.match_info["id"] == "1" else None
        return self._page(request, [(s.id, s.json()) for s in self.statuses if s.acct == wanted])

    async def context(self, request: web.Request) -> web.Response:
        sid = int(request.match_info["id"])
        if not any(s.id == sid for s in self.statuses):
            return web.json_response({"error": "Record not found"}, status=404)
        below: list[Status] = []
        frontier = {sid}
        while True:
            more = [s for s in self.statuses if s.reply_to in frontier and s not in below]
            if not more:
                break
            below += more
            frontier = {s.id for s in more}
        return self._json(
            request, {"ancestors": [], "descendants": [s.json() for s in sorted(below, key=lambda s: s.id)]}
        )

    async def search(self, request: web.Request) -> web.Response:
        if (problem := self._token_problem(request, required=True)) is not None:
            return problem
        q = request.query.get("q", "").lower()
        hits = [(s.id, s.json()) for s in self.statuses if q in s.html.lower()]
        page = self._page(request, hits)
        self.served.pop()
        body = {"accounts": [], "statuses": json.loads(page.text or "[]"), "hashtags": []}
        return self._json(request, body)
