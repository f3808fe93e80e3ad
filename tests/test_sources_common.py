"""What every connector must do, against each platform's fake: poll, resume, catch up, be polite, fail cleanly."""

from __future__ import annotations

from pathlib import Path
from typing import Any, AsyncIterator

import pytest

from fakes import FAKES
from fakes.base import FakePlatform
from listener.errors import RateLimitedError, SourceError, SourceUnavailableError
from listener.pipeline import Pipeline
from listener.rules.engine import Engine
from listener.sentiment import SentimentScorer
from listener.sources.base import Batch, Watch
from listener.store import Store


@pytest.fixture(params=sorted(FAKES))
async def fake(request: pytest.FixtureRequest) -> AsyncIterator[FakePlatform]:
    async with FAKES[request.param]() as server:
        yield server


async def poll(fake: FakePlatform, source: Any, cursor: str | None = None) -> Batch:
    watch = fake.watch()
    ((platform, target),) = [(p, t) for p, t in watch.jobs() if p == fake.platform]
    return await source.fetch(watch, target, cursor)


def ids(batch: Batch) -> list[str]:
    return sorted(m.id for m in batch.mentions)


async def test_first_poll_finds_the_posts_there_and_says_which_watch(fake, session):
    expected = fake.publish(3)
    batch = await poll(fake, fake.source(session))
    assert ids(batch) == sorted(expected)
    watch = fake.watch()
    for m in batch.mentions:
        assert (m.platform, m.watch, m.watch_kind) == (fake.platform, watch.id, watch.kind)
        assert m.text and m.url and m.created_at.tzinfo is not None
    assert batch.next_cursor


async def test_second_poll_picks_up_only_newer_posts(fake, session):
    fake.publish(3)
    source = fake.source(session)
    first = await poll(fake, source)
    newer = fake.publish(2)
    second = await poll(fake, source, first.next_cursor)
    assert ids(second) == sorted(newer)
    third = await poll(fake, source, second.next_cursor)
    assert third.mentions == []


async def test_restart_resumes_from_the_stored_cursor_with_nothing_missed_or_doubled(fake, session, tmp_path: Path):
    db = tmp_path / "listener.db"
    watch = fake.watch()
    key = Watch.job_key(fake.platform, watch.id)

    async def poll_into(store: Store) -> int:
        pipeline = Pipeline(store, SentimentScorer(), Engine([]))
        batch = await poll(fake, fake.source(session), store.get_cursor(key))  # a new source: a restarted daemon
        result = pipeline.ingest(batch.mentions, cursor=(key, batch.next_cursor) if batch.next_cursor else None)
        return len(result.new)

    before = fake.publish(3)
    store = Store(db)
    assert await poll_into(store) == 3
    store.close()
    during = fake.publish(4)  # posted while the daemon was down
    store = Store(db)
    assert await poll_into(store) == 4
    assert await poll_into(store) == 0
    stored = sorted(r[0] for r in store.db.execute("SELECT id FROM mentions"))
    store.close()
    assert stored == sorted(before + during)


async def test_catch_up_after_downtime_reads_several_pages(fake, session):
    if fake.catchup is None:
        pytest.skip(f"{fake.platform} serves a whole document per poll: there are no pages to catch up")
    source = fake.source(session)
    fake.publish(1)
    first = await poll(fake, source)
    backlog = fake.publish(fake.catchup)
    fake.requests.clear()
    batch = await poll(fake, source, first.next_cursor)
    assert ids(batch) == sorted(backlog)
    assert len(fake.api_requests(fake.listing_path)) >= 2


async def test_a_burst_after_an_empty_first_poll_is_read_in_full(fake, session, request):
    if fake.catchup is None:
        pytest.skip(f"{fake.platform} serves a whole document per poll: there are no pages to catch up")
    source = fake.source(session)
    first = await poll(fake, source)  # a quiet watch: nothing there yet
    assert first.mentions == []
    burst = fake.publish(fake.catchup)  # then a pile-on, more than a page, before the next poll
    batch = await poll(fake, source, first.next_cursor)
    assert ids(batch) == sorted(burst)


async def test_catch_up_is_bounded_by_max_pages(fake, session):
    if fake.catchup is None:
        pytest.skip(f"{fake.platform} serves a whole document per poll: there are no pages to bound")
    source = fake.source(session, max_pages=1)
    fake.publish(1)
    first = await poll(fake, source)
    fake.publish(fake.catchup)
    fake.requests.clear()
    await poll(fake, source, first.next_cursor)
    assert len(fake.api_requests(fake.listing_path)) == 1


async def test_a_429_is_waited_out_without_hammering_the_platform(fake, session):
    fake.publish(2)
    source = fake.source(session)
    fake.fail("429", wait_s=30)
    with pytest.raises(RateLimitedError) as info:
        await poll(fake, source)
    assert 25 <= info.value.retry_after_s <= 3600
    asked = len(fake.requests)
    # The next poll waits (on the injected clock) until the platform's reset, then succeeds.
    batch = await poll(fake, source)
    assert len(batch.mentions) == 2
    assert sum(fake.clock.slept) >= info.value.retry_after_s - 1
    assert len(fake.requests) > asked


async def test_a_long_rate_limit_skips_the_poll_without_a_request(fake, session):
    source = fake.source(session, max_wait_s=5)
    fake.fail("429", wait_s=600)
    with pytest.raises(RateLimitedError):
        await poll(fake, source)
    asked = len(fake.requests)
    with pytest.raises(RateLimitedError) as info:
        await poll(fake, source)
    assert len(fake.requests) == asked  # blocked locally: calling while throttled extends the block
    assert info.value.retry_after_s > 5


async def test_slows_down_before_the_limit(fake, session):
    if not fake.reports_quota:
        pytest.skip(f"{fake.platform} sends no rate-limit headers")
    fake.publish(1)
    source = fake.source(session, reserve_ratio=0.5, max_wait_s=120)
    fake.limit(limit=10, remaining=3, window_s=60)
    await poll(fake, source)
    fake.clock.slept.clear()
    await poll(fake, source)
    assert fake.clock.slept and 0 < fake.clock.slept[0] <= 60


async def test_a_5xx_is_retried_with_backoff(fake, session):
    fake.publish(1)
    source = fake.source(session)
    fake.fail("503")
    batch = await poll(fake, source)
    assert len(batch.mentions) == 1
    assert fake.clock.slept and fake.clock.slept[0] <= 1.0


async def test_a_platform_that_keeps_failing_is_unavailable(fake, session):
    source = fake.source(session, retries=1)
    fake.fail("500", times=2)
    with pytest.raises(SourceUnavailableError, match="HTTP 500"):
        await poll(fake, source)


async def test_a_timeout_is_unavailable(fake, session):
    fake.hang_s = 1.5
    source = fake.source(session, retries=0, timeout_s=0.3)
    fake.fail("timeout", times=5)
    with pytest.raises(SourceUnavailableError, match="timeout"):
        await poll(fake, source)


async def test_a_garbage_body_is_this_source_s_error_only(fake, session):
    source = fake.source(session, retries=0)
    fake.fail("garbage", times=5)
    with pytest.raises(SourceUnavailableError):
        await poll(fake, source)
    fake.faults.clear()
    fake.publish(1)
    assert len((await poll(fake, source)).mentions) == 1  # and it recovers


async def test_a_wrong_credential_is_refused_clearly_and_never_logged(fake, session, caplog):
    if not fake.has_auth:
        pytest.skip(f"{fake.platform} needs no credentials")
    source = fake.source_with_wrong_credentials(session)
    with pytest.raises(SourceError) as info:
        await poll(fake, source)
    assert not isinstance(info.value, (RateLimitedError, SourceUnavailableError))
    for secret in fake.secrets():
        assert secret not in str(info.value) and secret not in caplog.text
