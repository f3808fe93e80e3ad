"""Instagram: comments and replies on our own media, tagged media, hashtags within the 30-per-week budget."""

from __future__ import annotations

from typing import AsyncIterator

import pytest

from fakes.instagram import OUR_USER, FakeInstagram
from listener.errors import SourceError
from listener.sources.base import Watch


@pytest.fixture
async def ig() -> AsyncIterator[FakeInstagram]:
    async with FakeInstagram() as fake:
        yield fake


async def test_the_hashtag_id_is_searched_once_and_kept_in_the_cursor(ig, session):
    ig.publish(1)
    first = await ig.source(session).fetch(ig.watch(), "#MetroPolice", None)
    ig.publish(1)
    # A restarted daemon (new source) reads the id from the cursor: no search spent from the weekly 30.
    second = await ig.source(session).fetch(ig.watch(), "#MetroPolice", first.next_cursor)
    assert len(second.mentions) == 1
    assert ig.hashtag_searches == ["metropolice"]


async def test_hashtags_beyond_the_budget_are_refused_without_a_call(ig, session):
    source = ig.source(session, max_hashtags=1)
    await source.fetch(ig.watch(), "metropolice", None)
    watch = Watch(id="hacktps", kind="hashtag", targets={"instagram": "HackTPS"})
    with pytest.raises(SourceError, match="1 hashtags already used"):
        await source.fetch(watch, "HackTPS", None)
    assert ig.hashtag_searches == ["metropolice"]


async def test_account_watch_reads_comments_replies_and_tagged_media_once_each(ig, session):
    video = ig.new_media("Lip-sync challenge!", owner=OUR_USER)
    c1 = ig.comment(video, "this is so cringe")
    r1 = ig.comment(video, "agreed", parent=c1)
    tagged = ig.new_media("Thanks to the officers at the fair", tagged_us=True)
    watch = Watch(id="metropolice", kind="account", targets={"instagram": OUR_USER})
    source = ig.source(session)
    first = await source.fetch(watch, OUR_USER, None)
    assert sorted(m.id for m in first.mentions) == sorted([c1, r1, tagged.id])
    reply = next(m for m in first.mentions if m.id == r1)
    assert reply.in_reply_to == c1 and reply.thread == video.id and reply.url and reply.author
    c2 = ig.comment(video, "take it down")
    second = await source.fetch(watch, OUR_USER, first.next_cursor)
    assert [m.id for m in second.mentions] == [c2]


async def test_post_watch_reads_one_media_s_comments(ig, session):
    video = ig.new_media("Lip-sync challenge!", owner=OUR_USER)
    c1 = ig.comment(video, "fun!")
    watch = Watch(id="lipsync", kind="post", targets={"instagram": video.id})
    batch = await ig.source(session).fetch(watch, video.id, None)
    assert [(m.id, m.text) for m in batch.mentions] == [(c1, "fun!")]


async def test_query_watches_are_refused_as_unsupported(ig, session):
    watch = Watch(id="q", kind="query", targets={"instagram": "metro police"})
    with pytest.raises(SourceError, match="no keyword search"):
        await ig.source(session).fetch(watch, "metro police", None)
