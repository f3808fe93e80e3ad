"""Fake platform servers that speak the real APIs, for the source tests."""

from __future__ import annotations

from fakes.base import FakePlatform
from fakes.bluesky import FakeBluesky
from fakes.instagram import FakeInstagram
from fakes.mastodon import FakeMastodon
from fakes.reddit import FakeReddit
from fakes.rss import FakeFeed
from fakes.x import FakeX

FAKES: dict[str, type[FakePlatform]] = {
    "bluesky": FakeBluesky,
    "instagram": FakeInstagram,
    "mastodon": FakeMastodon,
    "reddit": FakeReddit,
    "rss": FakeFeed,
    "x": FakeX,
}
