"""Where mentions come from: one module per platform, the shared HTTP politeness, the poll schedule."""

from __future__ import annotations

import asyncio
import time
from typing import Any, Callable, Iterable

import aiohttp

from listener.sources.base import Batch, Source, SourceHealth, Watch
from listener.sources.bluesky import BlueskySource
from listener.sources.http import Clock, Sleep
from listener.sources.instagram import InstagramSource
from listener.sources.mastodon import MastodonSource
from listener.sources.reddit import RedditSource
from listener.sources.rss import RssSource
from listener.sources.settings import MastodonSettings, RssSettings, SourcesConfig
from listener.sources.x import XSource

# The one place that knows which class serves which `sources:` section.
SOURCE_CLASSES: dict[str, Callable[..., Source]] = {
    "bluesky": BlueskySource,
    "mastodon": MastodonSource,
    "x": XSource,
    "instagram": InstagramSource,
    "reddit": RedditSource,
    "rss": RssSource,
}


# Platforms whose public endpoints need no credentials: a watch may use them without a section.
PUBLIC_DEFAULTS: dict[str, Callable[[], Any]] = {"rss": RssSettings, "mastodon": MastodonSettings}


def build_sources(
    config: SourcesConfig,
    session: aiohttp.ClientSession,
    *,
    needed: Iterable[str] = (),
    clock: Clock = time.time,
    sleep: Sleep = asyncio.sleep,
) -> dict[str, Source]:
    """A source for each platform that has a `sources:` section, sharing one aiohttp session.

    A platform in `needed` (named by a watch) that has no section but needs no credentials
    (RSS feeds, a Mastodon instance's public timelines) is built with its default settings.
    """
    built: dict[str, Source] = {}
    wanted = set(needed)
    for name, cls in SOURCE_CLASSES.items():
        settings: Any = getattr(config, name)
        if settings is None and name in wanted and name in PUBLIC_DEFAULTS:
            settings = PUBLIC_DEFAULTS[name]()
        if settings is not None:
            built[name] = cls(settings, session, clock=clock, sleep=sleep)
    return built


__all__ = ["Batch", "Source", "SourceHealth", "Watch", "SOURCE_CLASSES", "build_sources"]
