"""Bluesky: app-password sessions that refresh and rotate, account and post watches, and Jetstream."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import AsyncIterator

import aiohttp
import pytest

from fakes.fixtures import wait_for
from fakes.bluesky import OUR_DID, OUR_HANDLE, FakeBluesky
from fakes.jetstream import FakeJetstream
from listener.errors import SourceError
from listener.pipeline import Pipeline
from listener.rules.engine import Engine
from listener.sentiment import SentimentScorer
from listener.sources.base import Batch, Watch
from listener.sources.bluesky import post_uri
from listener.sources.jetstream import JETSTREAM_KEY, JetstreamStream
from listener.sources.settings import BlueskySettings, JetstreamSettings
from listener.store import Store


@pytest.fixture
async def bsky() -> AsyncIterator[FakeBluesky]:
    async with FakeBluesky() as fake:
        yield fake


TAG = Watch(id="metropd", kind="hashtag", targets={"bluesky": "MetroPD"})


async def test_an_expired_access_token_is_refreshed_and_the_rotated_refresh_token_used_next(bsky, session):
    source = bsky.source(session)
    bsky.publish(1)
    await source.fetch(TAG, "MetroPD", None)
    for round_ in range(2):
        bsky.expire_access_tokens()
        bsky.publish(1)
        batch = await source.fetch(TAG, "MetroPD", None)
        assert len(batch.mentions) == round_ + 2
    refreshes = bsky.api_requests("/xrpc/com.atproto.server.refreshSession")
    assert len(refreshes) == 2
    # Each refresh used the token the previous one handed out: a reused refresh token would be refused.
    assert refreshes[0].headers["Authorization"] != refreshes[1].headers["Authorization"]
    assert bsky.sessions_created == 1  # createSession is limited to 30 per 5 min: never per poll


async def test_concurrent_polls_that_see_an_expired_token_refresh_it_once(bsky, session):
    source = bsky.source(session)
    await source.fetch(TAG, "MetroPD", None)
    bsky.expire_access_tokens()
    await asyncio.gather(*(source.fetch(TAG, "MetroPD", None) for _ in range(5)))
    assert len(bsky.api_requests("/xrpc/com.atproto.server.refreshSession")) == 1
    assert bsky.sessions_created == 1


async def test_when_the_refresh_token_is_dead_too_a_new_session_is_created(bsky, session):
    source = bsky.source(session)
    await source.fetch(TAG, "MetroPD", None)
    bsky.expire_access_tokens()
    bsky.refresh.clear()  # e.g. the app password was rotated, or 90 days passed
    bsky.publish(1)
    assert len((await source.fetch(TAG, "MetroPD", None)).mentions) == 1
    assert bsky.sessions_created == 2


async def test_search_without_credentials_says_what_to_configure(bsky, session):
    from listener.sources.bluesky import BlueskySource

    source = BlueskySource(BlueskySettings(base_url=bsky.base_url, public_url=bsky.base_url), session)
    with pytest.raises(SourceError, match="identifier and app_password"):
        await source.fetch(TAG, "MetroPD", None)


async def test_account_watch_finds_posts_that_mention_the_account(bsky, session):
    bsky.new_post(f"Waited 40 minutes for @{OUR_HANDLE} to show up", mention_dids=[OUR_DID])
    bsky.new_post("Unrelated chatter about the weather")
    watch = Watch(id="metropolice", kind="account", targets={"bluesky": f"@{OUR_HANDLE}"})
    batch = await bsky.source(session).fetch(watch, f"@{OUR_HANDLE}", None)
    assert [m.text for m in batch.mentions] == [f"Waited 40 minutes for @{OUR_HANDLE} to show up"]
    (search,) = bsky.api_requests("/xrpc/app.bsky.feed.searchPosts")
    assert search.query["mentions"] == [OUR_HANDLE]


async def test_post_watch_reads_the_thread_and_then_only_new_replies(bsky, session):
    root = bsky.new_post("Our lip-sync video is up!")
    first = bsky.new_post("This is embarrassing", reply_root=root.uri)
    rkey = root.uri.rsplit("/", 1)[1]
    url = f"https://bsky.app/profile/{root.did}/post/{rkey}"
    assert post_uri(url) == root.uri
    watch = Watch(id="lipsync", kind="post", targets={"bluesky": url})
    source = bsky.source(session)
    batch = await source.fetch(watch, url, None)
    assert [m.id for m in batch.mentions] == [first.uri]
    assert batch.mentions[0].thread == root.uri and batch.mentions[0].in_reply_to == root.uri
    second = bsky.new_post("Take it down", reply_root=root.uri)
    again = await source.fetch(watch, url, batch.next_cursor)
    assert [m.id for m in again.mentions] == [second.uri]


async def test_a_deleted_post_watch_is_a_clear_error(bsky, session):
    watch = Watch(id="gone", kind="post", targets={"bluesky": "at://did:plc:x/app.bsky.feed.post/3zz"})
    with pytest.raises(SourceError, match="NotFound"):
        await bsky.source(session).fetch(watch, "at://did:plc:x/app.bsky.feed.post/3zz", None)


# -- Jetstream ---------------------------------------------------------------------------


@pytest.fixture
async def jet() -> AsyncIterator[FakeJetstream]:
    async with FakeJetstream() as fake:
        yield fake


def stream_for(
    bsky: FakeBluesky, jet: FakeJetstream, session: aiohttp.ClientSession, watches: list[Watch]
) -> JetstreamStream:
    settings = BlueskySettings(
        base_url=bsky.base_url,
        public_url=bsky.base_url,
        jetstream=JetstreamSettings(
            enabled=True, url=jet.base_url.replace("http://", "ws://"), flush_s=0.05, rewind_s=5, max_backoff_s=0.2
        ),
    )
    return JetstreamStream(settings, session, watches)


JET_WATCHES = [
    Watch(id="metropolice", kind="account", targets={"bluesky": OUR_HANDLE}),
    Watch(id="metropd", kind="hashtag", targets={"bluesky": "MetroPD"}),
    Watch(id="cares", kind="query", targets={"bluesky": "metro cares"}),
]


async def test_jetstream_keeps_only_posts_for_our_watches_and_resumes_after_a_restart(
    bsky, jet, session, tmp_path: Path
):
    store = Store(tmp_path / "listener.db")
    pipeline = Pipeline(store, SentimentScorer(), Engine([]))

    async def ingest(batch: Batch) -> None:
        pipeline.ingest(batch.mentions, cursor=(JETSTREAM_KEY, batch.next_cursor) if batch.next_cursor else None)

    def stored() -> dict[str, str | None]:
        return {r[0]: r[1] for r in store.db.execute("SELECT id, watch FROM mentions")}

    stream = stream_for(bsky, jet, session, JET_WATCHES)
    task = asyncio.create_task(stream.run(ingest, lambda: store.get_cursor(JETSTREAM_KEY)))
    try:
        await wait_for(lambda: len(jet.sockets) == 1)  # no cursor yet: Jetstream sends live posts only
        wanted = {
            jet.post(
                "did:plc:a",
                f"Waited 40 minutes for @{OUR_HANDLE}",
                facets=[
                    {
                        "index": {"byteStart": 22, "byteEnd": 46},
                        "features": [{"$type": "app.bsky.richtext.facet#mention", "did": OUR_DID}],
                    }
                ],
            ): "metropolice",
            jet.post(
                "did:plc:b",
                "Replying to the service",
                reply={
                    "root": {"uri": f"at://{OUR_DID}/app.bsky.feed.post/3abc", "cid": "x"},
                    "parent": {"uri": f"at://{OUR_DID}/app.bsky.feed.post/3abc", "cid": "x"},
                },
            ): "metropolice",
            jet.post("did:plc:c", "Great turnout #MetroPD", tags=["metropd"]): "metropd",
            jet.post("did:plc:d", "Metro Cares drive was lovely"): "cares",
        }
        jet.post("did:plc:e", "Just my cat")
        jet.noise()
        await wait_for(lambda: len(stored()) == 4)
        assert stored() == wanted
        # The connection drops; posts made meanwhile arrive after the reconnect, from the cursor.
        await jet.drop()
        later = jet.post("did:plc:f", "Again #MetroPD", tags=["MetroPD"])
        await wait_for(lambda: later in stored())
        assert stream.connects >= 2
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    cursor = store.get_cursor(JETSTREAM_KEY)
    assert cursor is not None
    # A restarted daemon: new stream, same store. It rewinds a few seconds (overlap) and misses nothing.
    missed = jet.post("did:plc:g", "While we were down #MetroPD", tags=["MetroPD"])
    stream = stream_for(bsky, jet, session, JET_WATCHES)
    task = asyncio.create_task(stream.run(ingest, lambda: store.get_cursor(JETSTREAM_KEY)))
    try:
        await wait_for(lambda: missed in stored())
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert jet.cursors[-1] == int(cursor) - 5_000_000
    assert len(stored()) == 6  # each post once, however often the overlap replayed it
    store.close()


async def test_jetstream_reconnects_with_backoff_when_the_server_is_down(bsky, session):
    settings = BlueskySettings(
        base_url=bsky.base_url,
        public_url=bsky.base_url,
        jetstream=JetstreamSettings(enabled=True, url="ws://127.0.0.1:9", max_backoff_s=0.1),
    )
    statuses: list[tuple[bool, str | None]] = []
    stream = JetstreamStream(settings, session, JET_WATCHES)

    async def nothing(batch: Batch) -> None:
        raise AssertionError("no batch expected")

    task = asyncio.create_task(stream.run(nothing, lambda: None, on_status=lambda ok, err: statuses.append((ok, err))))
    await wait_for(lambda: len(statuses) >= 3)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert all(not ok for ok, _ in statuses)
    assert stream.health.consecutive_failures >= 3 and stream.health.last_error


async def run_stream(stream: JetstreamStream, seen: list) -> asyncio.Task:
    async def collect(batch: Batch) -> None:
        seen.extend(batch.mentions)

    return asyncio.create_task(stream.run(collect, lambda: None))


async def test_jetstream_names_authors_by_handle_asking_the_appview_25_at_a_time_and_once_each(bsky, jet, session):
    # 30 people post under the hashtag at once; 29 have profiles, one account is gone.
    people = {f"did:plc:person{i:02d}": f"person{i:02d}.bsky.social" for i in range(29)}
    bsky.handles.update(people)
    stream = stream_for(bsky, jet, session, JET_WATCHES)
    seen: list = []
    task = await run_stream(stream, seen)
    try:
        await wait_for(lambda: len(jet.sockets) == 1)
        for did in [*people, "did:plc:deleted"]:
            jet.post(did, "Great turnout #MetroPD", tags=["MetroPD"], time_us=jet.time_us + 1)
        await wait_for(lambda: len(seen) == 30)
        jet.post("did:plc:person00", "Again #MetroPD", tags=["MetroPD"])
        await wait_for(lambda: len(seen) == 31)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert {m.author for m in seen} == {*people.values(), "did:plc:deleted"}
    # The link stays on the DID, which, unlike a handle, never changes.
    first = next(m for m in seen if m.author == "person00.bsky.social")
    assert first.url.startswith("https://bsky.app/profile/did:plc:person00/post/")
    asked = [actor for r in bsky.api_requests("/xrpc/app.bsky.actor.getProfiles") for actor in r.query["actors"]]
    assert all(len(r.query["actors"]) <= 25 for r in bsky.api_requests("/xrpc/app.bsky.actor.getProfiles"))
    assert sorted(asked) == sorted([*people, "did:plc:deleted"])  # each once, the repeat poster too


async def test_jetstream_posts_keep_their_dids_rather_than_wait_for_a_failing_appview(bsky, jet, session):
    bsky.handles["did:plc:a"] = "a.bsky.social"
    stream = stream_for(bsky, jet, session, JET_WATCHES)
    seen: list = []
    task = await run_stream(stream, seen)
    try:
        await wait_for(lambda: len(jet.sockets) == 1)
        bsky.fail("timeout", times=3)  # the AppView hangs from now on
        bsky.hang_s = 10.0
        loop = asyncio.get_running_loop()
        posted = loop.time()
        jet.post("did:plc:a", "Long wait tonight #MetroPD", tags=["MetroPD"])
        await wait_for(lambda: len(seen) == 1, timeout_s=5)
        assert loop.time() - posted < 4  # not held back for the AppView's 10 s
        jet.post("did:plc:a", "Still waiting #MetroPD", tags=["MetroPD"])
        await wait_for(lambda: len(seen) == 2)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert [m.author for m in seen] == ["did:plc:a", "did:plc:a"]
    # After a failed look-up it waits a minute before asking again, rather than once per batch.
    assert len(bsky.api_requests("/xrpc/app.bsky.actor.getProfiles")) == 1


# -- the session across restarts ----------------------------------------------------------


async def test_a_restarted_source_refreshes_the_kept_session_instead_of_logging_in_again(bsky, session, tmp_path):
    store = Store(tmp_path / "listener.db")
    for run in range(3):  # three daemon starts, each with a new source on the same store
        source = bsky.source(session)
        source.keep_session(store.session_keeper("bluesky"))
        bsky.publish(1)
        assert len((await source.fetch(TAG, "MetroPD", None)).mentions) == run + 1
    assert bsky.sessions_created == 1  # logins are limited to 30 per 5 minutes: a crash loop must not use them up
    # Each start refreshed with the token the one before was handed (a reused one is refused).
    assert len(bsky.api_requests("/xrpc/com.atproto.server.refreshSession")) == 2
    kept = store.get_session_token("bluesky")
    assert kept is not None and bsky.password not in kept  # the refresh token, never the app password
    store.close()


async def test_a_kept_session_that_is_refused_or_for_another_account_means_logging_in(bsky, session, tmp_path):
    store = Store(tmp_path / "listener.db")
    source = bsky.source(session)
    source.keep_session(store.session_keeper("bluesky"))
    await source.fetch(TAG, "MetroPD", None)
    bsky.refresh.clear()  # the app password was revoked and re-issued: old sessions die
    source = bsky.source(session)
    source.keep_session(store.session_keeper("bluesky"))
    await source.fetch(TAG, "MetroPD", None)
    assert bsky.sessions_created == 2
    # A token kept for another account is not tried at all.
    store.set_session_token("bluesky", '{"identifier": "someone.else", "refresh": "ref-not-ours"}')
    source = bsky.source(session)
    source.keep_session(store.session_keeper("bluesky"))
    refreshes = len(bsky.api_requests("/xrpc/com.atproto.server.refreshSession"))
    await source.fetch(TAG, "MetroPD", None)
    assert len(bsky.api_requests("/xrpc/com.atproto.server.refreshSession")) == refreshes
    assert bsky.sessions_created == 3
    store.close()
