"""A fake news site: an Atom feed with ETag and Last-Modified, 304s, a moved feed (301) and a gone one (410)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import format_datetime
from typing import Any
from xml.sax.saxutils import escape

from aiohttp import web

from fakes.base import FakePlatform
from listener.sources.base import Watch
from listener.sources.rss import RssSource
from listener.sources.settings import RssSettings


@dataclass
class Entry:
    id: str
    title: str
    summary_html: str
    link: str
    published_ts: float | None

    def xml(self) -> str:
        published = ""
        if self.published_ts is not None:
            when = datetime.fromtimestamp(self.published_ts, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
            published = f"<published>{when}</published><updated>{when}</updated>"
        return (
            f"<entry><title>{escape(self.title)}</title><id>{escape(self.id)}</id>"
            f'<link href="{escape(self.link)}"/>{published}<author><name>City Desk</name></author>'
            f'<summary type="html">{escape(self.summary_html)}</summary></entry>'
        )


class FakeFeed(FakePlatform):
    platform = "rss"
    reports_quota = False
    has_auth = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.entries: list[Entry] = []
        self.keep = 20  # a feed shows only its newest entries
        self.last_modified = datetime(2026, 8, 20, 21, 0, tzinfo=timezone.utc)
        self.t0 = self.clock()
        self.conditional_hits = 0
        r = self.app.router
        r.add_get("/feed.atom", self.feed)
        r.add_get("/old-feed", self.moved)
        r.add_get("/gone", self.gone)

    def watch(self) -> Watch:
        return Watch(id="city-news", kind="query", targets={"rss": f"{self.base_url}/feed.atom"}, interval=900)

    def source(self, session: Any, **settings: Any) -> RssSource:
        return RssSource(RssSettings(**settings), session, clock=self.clock, sleep=self.clock.sleep)

    def new_entry(
        self, title: str, summary: str = "<p>Weekly meetings in every district.</p>", published: bool = True
    ) -> Entry:
        n = self.next_seq()
        entry = Entry(
            f"tag:citynews.example,2026:{4400 + n}",
            title,
            summary,
            f"https://citynews.example/2026/08/20/story-{n}",
            self.t0 + n if published else None,
        )
        self.entries.append(entry)
        self.last_modified = datetime.fromtimestamp(self.t0 + n, tz=timezone.utc)
        return entry

    def publish(self, n: int = 1) -> list[str]:
        return [self.new_entry(f"Metro Police story {self._seq + 1}").id for _ in range(n)]

    def body(self) -> str:
        shown = sorted(self.entries, key=lambda e: e.id, reverse=True)[: self.keep]
        return (
            '<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom">'
            "<title>City News</title><id>tag:citynews.example,2026:feed</id>"
            f"<updated>{self.last_modified.strftime('%Y-%m-%dT%H:%M:%SZ')}</updated>"
            + "".join(e.xml() for e in shown)
            + "</feed>"
        )

    async def feed(self, request: web.Request) -> web.Response:
        body = self.body()
        etag = 'W/"' + hashlib.sha1(body.encode()).hexdigest()[:12] + '"'
        modified = format_datetime(self.last_modified, usegmt=True)
        headers = {"ETag": etag, "Last-Modified": modified}
        if request.headers.get("If-None-Match") == etag or (
            "If-None-Match" not in request.headers and request.headers.get("If-Modified-Since") == modified
        ):
            self.conditional_hits += 1
            return web.Response(status=304, headers=headers)
        return web.Response(text=body, content_type="application/atom+xml", headers=headers)

    async def moved(self, request: web.Request) -> web.Response:
        raise web.HTTPMovedPermanently(location="/feed.atom")

    async def gone(self, request: web.Request) -> web.Response:
        return web.Response(status=410, text="Gone")
