"""X API v2: since_id polling as X documents it, next tokens, the mentions timeline."""

from __future__ import annotations

from typing import AsyncIterator

import pytest

from fakes.x import OUR_ID, FakeX
from listener.errors import SourceError
from listener.sources.base import Watch


@pytest.fixture
async def x() -> AsyncIterator[FakeX]:
    async with FakeX() as fake:
        yield fake


async def test_since_id_is_the_first_page_s_newest_id_and_kept_while_paging(x, session):
    source = x.source(session)
    x.publish(3)
    first = await source.fetch(x.watch(), "MetroPD", None)
    newest = max(int(m.id) for m in first.mentions)
    x.publish(150)
    x.requests.clear()
    second = await source.fetch(x.watch(), "MetroPD", first.next_cursor)
    assert len(second.mentions) == 150
    pages = x.api_requests("/2/tweets/search/recent")
    assert [p.query["since_id"] for p in pages] == [[str(newest)]] * 2
    assert "next_token" not in pages[0].query and pages[1].query["next_token"]
    assert pages[0].query["query"] == ["#MetroPD -is:retweet"]
    assert "public_metrics" in pages[0].query["tweet.fields"][0]
    m = second.mentions[0]
    assert m.author and m.url == f"https://x.com/{m.author}/status/{m.id}" and m.metrics["likes"] == 40


async def test_account_watch_reads_the_mentions_timeline(x, session):
    mention = x.new_tweet("@MetroPolice someone is in trouble on the bridge", mentions_us=True)
    x.new_tweet("nothing to do with us")
    watch = Watch(id="metropolice", kind="account", targets={"x": "@MetroPolice"})
    batch = await x.source(session).fetch(watch, "@MetroPolice", None)
    assert [m.id for m in batch.mentions] == [str(mention.id)]
    assert x.api_requests(f"/2/users/{OUR_ID}/mentions")


async def test_an_unknown_account_is_a_clear_error(x, session):
    watch = Watch(id="nobody", kind="account", targets={"x": "nobody_here"})
    with pytest.raises(SourceError, match="Could not find user with username: \\[nobody_here\\]"):
        await x.source(session).fetch(watch, "nobody_here", None)


async def test_post_watch_searches_the_conversation(x, session):
    root = x.new_tweet("Our lip-sync video")
    reply = x.new_tweet("cringe", conversation_id=root.id)
    watch = Watch(id="lipsync", kind="post", targets={"x": f"https://x.com/MetroPolice/status/{root.id}"})
    batch = await x.source(session).fetch(watch, watch.targets["x"], None)
    assert [m.id for m in batch.mentions] == [str(reply.id)]
    assert batch.mentions[0].thread == str(root.id) and batch.mentions[0].in_reply_to == str(root.id)
