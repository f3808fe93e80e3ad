"""RSS/Atom: conditional GET, moved and gone feeds, HTML summaries, undated entries."""

from __future__ import annotations

from typing import AsyncIterator

import pytest

from fakes.rss import FakeFeed
from listener.errors import SourceError
from listener.sources.base import Watch


@pytest.fixture
async def feed() -> AsyncIterator[FakeFeed]:
    async with FakeFeed() as fake:
        yield fake


async def test_an_unchanged_feed_costs_a_304_and_keeps_the_cursor(feed, session):
    feed.new_entry("Metro Police launch community liaison unit")
    source = feed.source(session)
    watch = feed.watch()
    first = await source.fetch(watch, watch.targets["rss"], None)
    (m,) = first.mentions
    assert m.text == "Metro Police launch community liaison unit\n\nWeekly meetings in every district."
    assert m.author == "City Desk" and m.url and m.url.startswith("https://citynews.example/")
    second = await source.fetch(watch, watch.targets["rss"], first.next_cursor)
    assert second.mentions == [] and second.next_cursor == first.next_cursor
    assert feed.conditional_hits == 1
    assert feed.requests[-1].headers["If-None-Match"].startswith('W/"')  # weak ETag sent back verbatim


async def test_a_moved_feed_is_followed_and_remembered(feed, session):
    feed.publish(1)
    watch = Watch(id="news", kind="query", targets={"rss": f"{feed.base_url}/old-feed"})
    source = feed.source(session)
    first = await source.fetch(watch, watch.targets["rss"], None)
    assert len(first.mentions) == 1
    feed.requests.clear()
    feed.publish(1)
    await source.fetch(watch, watch.targets["rss"], first.next_cursor)
    assert [r.path for r in feed.requests] == ["/feed.atom"]


async def test_a_gone_feed_says_to_remove_it(feed, session):
    watch = Watch(id="news", kind="query", targets={"rss": f"{feed.base_url}/gone"})
    with pytest.raises(SourceError, match="gone.*remove it from watch 'news'"):
        await feed.source(session).fetch(watch, watch.targets["rss"], None)


async def test_an_undated_entry_is_read_as_of_now(feed, session):
    feed.new_entry("Undated story", published=False)
    watch = feed.watch()
    batch = await feed.source(session).fetch(watch, watch.targets["rss"], None)
    assert batch.mentions[0].ts == pytest.approx(feed.clock())
