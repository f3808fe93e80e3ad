"""Reddit: OAuth tokens fetched once and renewed when refused, the User-Agent, search, comment trees."""

from __future__ import annotations

from typing import AsyncIterator

import pytest

from fakes.reddit import USER_AGENT, FakeReddit
from listener.sources.base import Watch


@pytest.fixture
async def reddit() -> AsyncIterator[FakeReddit]:
    async with FakeReddit() as fake:
        yield fake


async def test_one_token_serves_many_polls_and_a_refused_one_is_replaced(reddit, session):
    source = reddit.source(session)
    cursor = None
    for _ in range(3):
        reddit.publish(1)
        cursor = (await source.fetch(reddit.watch(), "r/Springfield", cursor)).next_cursor
    assert source.tokens_fetched == 1
    reddit.tokens.clear()  # revoked
    reddit.publish(1)
    assert len((await source.fetch(reddit.watch(), "r/Springfield", cursor)).mentions) == 1
    assert source.tokens_fetched == 2
    assert set(reddit.user_agents) == {USER_AGENT}


async def test_search_watch_and_its_text(reddit, session):
    post = reddit.new_post("Metro Police response at the downtown march", "Honestly calm &amp; kind.")
    reddit.new_post("Lost cat near the park")
    watch = Watch(id="metro", kind="query", targets={"reddit": "metro police"})
    batch = await reddit.source(session).fetch(watch, "metro police", None)
    (m,) = batch.mentions
    assert m.id == post.name and m.text == "Metro Police response at the downtown march\n\nHonestly calm & kind."
    assert (
        m.url == f"https://www.reddit.com/r/Springfield/comments/{post.id}/post/"
        and m.extra["subreddit"] == "Springfield"
    )
    (call,) = reddit.api_requests("/search")
    assert call.query["sort"] == ["new"] and call.headers["Authorization"].startswith("bearer ")


async def test_post_watch_flattens_the_comment_tree_and_skips_removed_comments(reddit, session):
    post = reddit.new_post("Our lip-sync video")
    top = reddit.reply(post, "cringe")
    nested = reddit.reply(top, "agreed")
    reddit.reply(post, "[removed]")
    watch = Watch(
        id="lipsync", kind="post", targets={"reddit": f"https://www.reddit.com/r/Springfield/comments/{post.id}/x/"}
    )
    source = reddit.source(session)
    first = await source.fetch(watch, watch.targets["reddit"], None)
    assert sorted(m.id for m in first.mentions) == sorted([top.name, nested.name])
    assert next(m for m in first.mentions if m.id == nested.name).in_reply_to == top.name
    later = reddit.reply(post, "take it down")
    second = await source.fetch(watch, watch.targets["reddit"], first.next_cursor)
    assert [m.id for m in second.mentions] == [later.name]
