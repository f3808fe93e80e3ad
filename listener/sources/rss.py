"""RSS and Atom news feeds: conditional GET, entries as mentions, a seen-set against repeats.

The watch's target is the feed's URL. The feed is fetched with aiohttp and the bytes handed
to feedparser (whose own URL fetching is being removed upstream). ETag and Last-Modified are
sent back so an unchanged feed costs a 304; entry order and GUIDs are unreliable, so entries
are also deduplicated on id, then link, then a hash of title and link.
"""

from __future__ import annotations

import asyncio
import calendar
import hashlib
import logging
import time
from typing import Any

import aiohttp
import feedparser

from listener.errors import MentionError, SourceError, SourceUnavailableError
from listener.mention import Mention
from listener.sources.base import Batch, Watch, bounded_seen, dump_cursor, load_cursor, watch_fields
from listener.sources.http import Clock, HttpClient, Sleep
from listener.sources.settings import RssSettings
from listener.sources.text import html_to_text

log = logging.getLogger(__name__)
PLATFORM = "rss"


def entry_key(entry: Any) -> str:
    value = entry.get("id") or entry.get("link")
    if value:
        return str(value)
    digest = hashlib.sha256(f"{entry.get('title', '')}\n{entry.get('link', '')}".encode()).hexdigest()
    return f"sha256:{digest[:32]}"


def entry_ts(entry: Any) -> float | None:
    parsed = entry.get("published_parsed") or entry.get("updated_parsed")
    return float(calendar.timegm(parsed)) if parsed else None


class RssSource:
    """Polls RSS/Atom feeds; one feed per watch target."""

    platform = PLATFORM

    def __init__(
        self,
        settings: RssSettings,
        session: aiohttp.ClientSession,
        *,
        clock: Clock = time.time,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.http = HttpClient(
            PLATFORM, session, settings, clock=clock, sleep=sleep, default_wait_s=600.0, user_agent=settings.user_agent
        )

    async def fetch(self, watch: Watch, target: str, cursor: str | None) -> Batch:
        state = load_cursor(cursor)
        # A 301 moved the feed for good: keep polling where it went.
        url = state.get("url") or target.strip()
        headers: dict[str, str] = {
            "Accept": "application/atom+xml, application/rss+xml, application/xml;q=0.9, */*;q=0.5"
        }
        if state.get("etag"):
            headers["If-None-Match"] = state["etag"]  # weak validators go back verbatim
        if state.get("modified"):
            headers["If-Modified-Since"] = state["modified"]
        resp = await self.http.request("GET", url, headers=headers, ok=(200, 304, 410))
        if resp.status == 410:
            raise SourceError(PLATFORM, f"{url} is gone (HTTP 410): remove it from watch {watch.id!r}")
        if resp.status == 304:
            return Batch([], cursor)
        parsed = feedparser.parse(resp.body, response_headers=dict(resp.headers))
        if parsed.bozo and not parsed.entries:
            raise SourceUnavailableError(PLATFORM, f"{url}: not a feed ({type(parsed.bozo_exception).__name__})")
        seen: dict[str, float] = dict(state.get("seen") or {})
        first = not state
        now = self.clock()
        mentions: list[Mention] = []
        for entry in parsed.entries:
            key = entry_key(entry)
            if key in seen:
                continue
            seen[key] = entry_ts(entry) or now
            try:
                mentions.append(self._mention(entry, key, watch, now))
            except MentionError as exc:
                log.warning("rss: %s: entry %s skipped: %s", watch.id, key, exc)
        if first and mentions:
            log.info("rss: %s: first poll of %s: %d entries", watch.id, url, len(mentions))
        new_state: dict[str, Any] = {"seen": bounded_seen(seen, cap=self.settings.max_seen)}
        if resp.headers.get("ETag"):
            new_state["etag"] = resp.headers["ETag"]
        if resp.headers.get("Last-Modified"):
            new_state["modified"] = resp.headers["Last-Modified"]
        if resp.redirected_permanently:
            new_state["url"] = resp.url
        elif state.get("url"):
            new_state["url"] = state["url"]
        return Batch(mentions, dump_cursor(new_state))

    def _mention(self, entry: Any, key: str, watch: Watch, now: float) -> Mention:
        title = html_to_text(entry.get("title") or "")
        summary = html_to_text(entry.get("summary") or "")
        text = f"{title}\n\n{summary}".strip() if summary and summary != title else title
        return Mention.from_dict(
            {
                "platform": PLATFORM,
                "id": key,
                "url": entry.get("link"),
                "author": entry.get("author"),
                "text": text,
                # Feeds without dates are read as of now: better late than dropped.
                "created_at": entry_ts(entry) or now,
                "thread": None,
                **watch_fields(watch),
            }
        )
