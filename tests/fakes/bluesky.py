"""A fake Bluesky PDS/AppView: sessions with rotating refresh tokens, searchPosts, getPostThread.

Every JSON answer is checked against the official lexicon models (the `atproto` package) before
it is sent, so the fake cannot drift from the real shapes.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from aiohttp import web
from atproto_client import models

from fakes.base import FakePlatform, Quota, bearer
from listener.secrets import Secret
from listener.sources.base import Watch
from listener.sources.bluesky import BlueskySource
from listener.sources.settings import BlueskySettings

OUR_DID = "did:plc:metropolice000000000000a"
OUR_HANDLE = "metropolice.bsky.social"


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class Post:
    uri: str
    did: str
    handle: str
    text: str
    created_ts: float
    tags: list[str] = field(default_factory=list)
    mention_dids: list[str] = field(default_factory=list)
    reply_root: str | None = None

    def record(self) -> dict[str, Any]:
        facets = []
        raw = self.text.encode()
        for tag in self.tags:
            start = raw.find(f"#{tag}".encode())
            facets.append(
                {
                    "index": {"byteStart": start, "byteEnd": start + len(tag.encode()) + 1},
                    "features": [{"$type": "app.bsky.richtext.facet#tag", "tag": tag}],
                }
            )
        for did in self.mention_dids:
            start = raw.find(f"@{OUR_HANDLE}".encode())
            facets.append(
                {
                    "index": {"byteStart": start, "byteEnd": start + len(OUR_HANDLE) + 1},
                    "features": [{"$type": "app.bsky.richtext.facet#mention", "did": did}],
                }
            )
        record: dict[str, Any] = {
            "$type": "app.bsky.feed.post",
            "text": self.text,
            "createdAt": iso(self.created_ts),
            "langs": ["en"],
        }
        if facets:
            record["facets"] = facets
        if self.reply_root:
            ref = {"uri": self.reply_root, "cid": "bafyreib2rxk3rh6kzwq4d5p6xqv2w7m3c4"}
            record["reply"] = {"root": ref, "parent": ref}
        return record

    def view(self) -> dict[str, Any]:
        return {
            "uri": self.uri,
            "cid": "bafyreib2rxk3rh6kzwq4d5p6xqv2w7m3c4",
            "author": {"did": self.did, "handle": self.handle, "displayName": self.handle.split(".")[0]},
            "record": self.record(),
            "replyCount": 0,
            "repostCount": 1,
            "likeCount": 2,
            "quoteCount": 0,
            "indexedAt": iso(self.created_ts + 0.5),
        }


class FakeBluesky(FakePlatform):
    platform = "bluesky"
    catchup = 250
    listing_path = "/xrpc/app.bsky.feed.searchPosts"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.password = "app-pass-1234"
        self.access: set[str] = set()
        self.expired: set[str] = set()
        self.refresh: set[str] = set()
        self.sessions_created = 0
        self.posts: list[Post] = []
        self.t0 = self.clock()
        r = self.app.router
        r.add_post("/xrpc/com.atproto.server.createSession", self.create_session)
        r.add_post("/xrpc/com.atproto.server.refreshSession", self.refresh_session)
        r.add_get("/xrpc/app.bsky.feed.searchPosts", self.search_posts)
        r.add_get("/xrpc/app.bsky.feed.getPostThread", self.get_post_thread)
        r.add_get("/xrpc/com.atproto.identity.resolveHandle", self.resolve_handle)
        r.add_get("/xrpc/app.bsky.actor.getProfiles", self.get_profiles)
        self.handles: dict[str, str] = {OUR_DID: OUR_HANDLE}  # did -> handle, for getProfiles

    # -- test helpers -----------------------------------------------------------------

    def watch(self) -> Watch:
        return Watch(id="metropd", kind="hashtag", targets={"bluesky": "MetroPD"}, interval=60)

    def new_post(self, text: str, **kwargs: Any) -> Post:
        n = self.next_seq()
        did = f"did:plc:user{n:020d}"
        post = Post(
            f"at://{did}/app.bsky.feed.post/3l{n:011d}", did, f"user{n}.bsky.social", text, self.t0 + n, **kwargs
        )
        self.posts.append(post)
        return post

    def publish(self, n: int = 1) -> list[str]:
        return [self.new_post(f"Post {self._seq + 1} about the march #MetroPD", tags=["MetroPD"]).uri for _ in range(n)]

    def source(self, session: Any, **settings: Any) -> BlueskySource:
        os.environ["LISTENER_TEST_BLUESKY_PASSWORD"] = self.password
        values: dict[str, Any] = {
            "base_url": self.base_url,
            "public_url": self.base_url,
            "identifier": OUR_HANDLE,
            "app_password": Secret(env="LISTENER_TEST_BLUESKY_PASSWORD"),
            **settings,
        }
        return BlueskySource(BlueskySettings(**values), session, clock=self.clock, sleep=self.clock.sleep)

    def source_with_wrong_credentials(self, session: Any) -> BlueskySource:
        os.environ["LISTENER_TEST_BLUESKY_WRONG"] = "wrong-app-password"
        return self.source(session, app_password=Secret(env="LISTENER_TEST_BLUESKY_WRONG"))

    def secrets(self) -> list[str]:
        return [self.password, "wrong-app-password"]

    def expire_access_tokens(self) -> None:
        self.expired |= self.access
        self.access.clear()

    # -- the API ----------------------------------------------------------------------

    def rate_headers(self, quota: Quota) -> dict[str, str]:
        return {
            "RateLimit-Limit": str(quota.limit),
            "RateLimit-Remaining": str(max(0, quota.remaining)),
            "RateLimit-Reset": f"{quota.reset_ts:.0f}",
            "RateLimit-Policy": f"{quota.limit};w={quota.window_s:.0f}",
        }

    def too_many(self, wait_s: float) -> web.Response:
        return web.json_response({"error": "RateLimitExceeded", "message": "Rate Limit Exceeded"}, status=429)

    def counts_toward_quota(self, request: web.Request) -> bool:
        return "identity" not in request.path

    def _error(self, status: int, error: str, message: str) -> web.Response:
        return web.json_response({"error": error, "message": message}, status=status)

    def _new_tokens(self) -> dict[str, Any]:
        access, refresh = f"acc-{secrets.token_hex(8)}", f"ref-{secrets.token_hex(8)}"
        self.access.add(access)
        self.refresh.add(refresh)
        body = {"accessJwt": access, "refreshJwt": refresh, "handle": OUR_HANDLE, "did": OUR_DID}
        return body

    async def create_session(self, request: web.Request) -> web.Response:
        data = await request.json()
        if data.get("identifier") != OUR_HANDLE or data.get("password") != self.password:
            return self._error(401, "AuthenticationRequired", "Invalid identifier or password")
        self.sessions_created += 1
        return web.json_response(_checked(models.ComAtprotoServerCreateSession.Response, self._new_tokens()))

    async def refresh_session(self, request: web.Request) -> web.Response:
        token = bearer(request)
        if token not in self.refresh:
            return self._error(400, "ExpiredToken", "Token has expired")
        self.refresh.discard(token)  # refresh tokens rotate: each works once
        return web.json_response(_checked(models.ComAtprotoServerRefreshSession.Response, self._new_tokens()))

    def _authorised(self, request: web.Request) -> web.Response | None:
        token = bearer(request)
        if token is None:
            return self._error(403, "Forbidden", "Authentication required")
        if token in self.expired:
            return self._error(400, "ExpiredToken", "Token has expired")
        if token not in self.access:
            return self._error(401, "InvalidToken", "Token could not be verified")
        return None

    async def search_posts(self, request: web.Request) -> web.Response:
        if (refused := self._authorised(request)) is not None:
            return refused
        q = request.query.get("q")
        if not q:
            return self._error(400, "InvalidRequest", 'Params must have the property "q"')
        tags = {t.lower() for t in request.query.getall("tag", [])}
        mentions = request.query.get("mentions")
        since = request.query.get("since")
        hits = []
        for post in sorted(self.posts, key=lambda p: p.created_ts, reverse=True):
            if tags and not tags <= {t.lower() for t in post.tags}:
                continue
            if mentions and (mentions != OUR_HANDLE or OUR_DID not in post.mention_dids):
                continue
            if not tags and not mentions and q.lower() not in post.text.lower():
                continue
            if since and post.created_ts < _ts(since):  # sortAt: the earlier of createdAt and indexedAt
                continue
            hits.append(post)
        limit = min(int(request.query.get("limit", "25")), 100)
        start = int(request.query.get("cursor", "0"))
        page = hits[start : start + limit]
        body: dict[str, Any] = {"posts": [p.view() for p in page], "hitsTotal": len(hits)}
        if start + limit < len(hits):
            body["cursor"] = str(start + limit)
        return web.json_response(_checked(models.AppBskyFeedSearchPosts.Response, body))

    async def get_post_thread(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") and (refused := self._authorised(request)) is not None:
            return refused
        uri = request.query.get("uri", "")
        root = next((p for p in self.posts if p.uri == uri), None)
        if root is None:
            return self._error(400, "NotFound", f"Post not found: {uri}")
        replies = [
            {"$type": "app.bsky.feed.defs#threadViewPost", "post": p.view(), "replies": []}
            for p in self.posts
            if p.reply_root == uri
        ]
        body = {"thread": {"$type": "app.bsky.feed.defs#threadViewPost", "post": root.view(), "replies": replies}}
        return web.json_response(_checked(models.AppBskyFeedGetPostThread.Response, body))

    async def resolve_handle(self, request: web.Request) -> web.Response:
        handle = request.query.get("handle")
        if handle == OUR_HANDLE:
            return web.json_response({"did": OUR_DID})
        return self._error(400, "InvalidRequest", "Unable to resolve handle")


    async def get_profiles(self, request: web.Request) -> web.Response:
        """Public AppView: `actors` (DIDs or handles) repeated, at most 25; unknown actors are left out."""
        actors = request.query.getall("actors", [])
        if not actors:
            return self._error(400, "InvalidRequest", 'Error: Params must have the property "actors"')
        if len(actors) > 25:
            return self._error(400, "InvalidRequest", "Error: actors must not have more than 25 elements")
        by_handle = {h: d for d, h in self.handles.items()}
        profiles = []
        for actor in actors:
            did = actor if actor in self.handles else by_handle.get(actor)
            if did is not None:
                handle = self.handles[did]
                profiles.append({"did": did, "handle": handle, "displayName": handle.split(".")[0],
                                 "followersCount": 10, "followsCount": 5, "postsCount": 42})
        return web.json_response(_checked(models.AppBskyActorGetProfiles.Response, {"profiles": profiles}))


def _ts(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def _checked(model: Any, body: dict[str, Any]) -> dict[str, Any]:
    """Fail loudly (in the test) if the fake's answer would not parse as the lexicon says."""
    model.model_validate(body)
    return body
