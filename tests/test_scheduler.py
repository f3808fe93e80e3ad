"""The poll scheduler: on time, isolated failures, 429 backoff, concurrency limits, live updates, drain."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, AsyncIterator

import pytest

from fakes.fixtures import wait_for
from fakes.mastodon import FakeMastodon
from fakes.x import FakeX
from listener.pipeline import Pipeline
from listener.rules.engine import Engine
from listener.sentiment import SentimentScorer
from listener.sources.base import Batch, Watch
from listener.sources.scheduler import PollScheduler
from listener.store import Store


class SlowSource:
    """A stand-in platform whose fetch takes a while; records how many run at once."""

    platform = "slow"

    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s
        self.running = 0
        self.most = 0
        self.calls: list[str] = []

    async def fetch(self, watch: Watch, target: str, cursor: str | None) -> Batch:
        self.running += 1
        self.most = max(self.most, self.running)
        self.calls.append(watch.id)
        try:
            await asyncio.sleep(self.delay_s)
        finally:
            self.running -= 1
        return Batch([], None)


class Recorder:
    def __init__(self) -> None:
        self.batches: list[tuple[str, Batch]] = []
        self.polls: list[tuple[str, bool, str | None]] = []

    async def on_batch(self, watch: Watch, key: str, batch: Batch) -> None:
        self.batches.append((key, batch))

    def on_poll(self, key: str, ok: bool, error: str | None) -> None:
        self.polls.append((key, ok, error))

    def count(self, key: str, ok: bool = True) -> int:
        return sum(1 for k, good, _ in self.polls if k == key and good == ok)


@pytest.fixture
async def masto() -> AsyncIterator[FakeMastodon]:
    async with FakeMastodon() as fake:
        yield fake


@pytest.fixture
async def x() -> AsyncIterator[FakeX]:
    async with FakeX() as fake:
        yield fake


def scheduler(sources: dict[str, Any], recorder: Recorder, **kwargs: Any) -> PollScheduler:
    kwargs.setdefault("startup_spread_s", 0)
    return PollScheduler(
        sources, get_cursor=lambda key: None, on_batch=recorder.on_batch, on_poll=recorder.on_poll, **kwargs
    )


async def test_a_broken_platform_leaves_the_others_polling_on_time(masto, x, session):
    masto.publish(1)
    x.hang_s = 3
    x.fail("timeout", times=100)
    sources = {"mastodon": masto.source(session), "x": x.source(session, timeout_s=0.3, retries=0)}
    rec = Recorder()
    sched = scheduler(sources, rec, backoff_base_s=0.1, backoff_max_s=0.2)
    watches = [Watch(id="tag", kind="hashtag", targets={"mastodon": "MetroPolice", "x": "MetroPD"}, interval=1)]
    sched.start(watches)
    try:
        await wait_for(lambda: rec.count("mastodon:tag") >= 3 and rec.count("x:tag", ok=False) >= 2, timeout_s=15)
    finally:
        await sched.shutdown()
    assert max(sched.lateness_s) < 1.0, sorted(sched.lateness_s)[-5:]
    health = sched.health["x:tag"]
    assert health.consecutive_failures >= 2 and "timeout" in (health.last_error or "")
    assert sched.health["mastodon:tag"].last_success_ts and sched.health["mastodon:tag"].consecutive_failures == 0


async def test_a_429_backs_the_job_off_until_the_reset(x, session):
    x.publish(1)
    x.fail("429", wait_s=30)
    source = x.source(session, max_wait_s=5)
    rec = Recorder()
    sched = scheduler({"x": source}, rec, clock=x.clock)
    sched.start([Watch(id="tag", kind="hashtag", targets={"x": "MetroPD"}, interval=1)])
    try:
        await wait_for(lambda: rec.count("x:tag", ok=False) == 1)
        asked = len(x.requests)
        await asyncio.sleep(2.5)  # two more scheduled runs: both skipped, nothing sent
        assert len(x.requests) == asked and rec.count("x:tag", ok=False) == 1
        backoff = sched.health["x:tag"].backoff_until_ts
        assert backoff is not None and backoff - x.clock() == pytest.approx(30, abs=1)
        x.clock.now += 31  # the reset has passed
        await wait_for(lambda: rec.count("x:tag") == 1)
    finally:
        await sched.shutdown()
    assert sched.health["x:tag"].backoff_until_ts is None


async def test_a_per_platform_limit_keeps_many_watches_from_firing_at_once():
    slow = SlowSource(0.3)
    rec = Recorder()
    sched = scheduler({"slow": slow}, rec, max_concurrent_per_platform=3)
    sched.start([Watch(id=f"w{i}", kind="query", targets={"slow": "q"}, interval=5) for i in range(12)])
    try:
        await wait_for(lambda: len(slow.calls) == 12)
    finally:
        await sched.shutdown()
    assert slow.most == 3


async def test_update_adds_removes_and_reschedules_without_a_restart():
    slow = SlowSource(0)
    rec = Recorder()
    sched = scheduler({"slow": slow}, rec)
    a = Watch(id="a", kind="query", targets={"slow": "q"}, interval=1)
    b = Watch(id="b", kind="query", targets={"slow": "q"}, interval=1)
    sched.start([a])
    try:
        await wait_for(lambda: "a" in slow.calls)
        sched.update([a, b])
        await wait_for(lambda: "b" in slow.calls)
        sched.update([b.model_copy(update={"interval": 7.0})])
        assert sched.job_keys == ["slow:b"] and "slow:a" not in sched.health
        job = sched._scheduler.get_job("slow:b")
        assert job.trigger.interval.total_seconds() == 7 and job.misfire_grace_time == 3
        calls_a = slow.calls.count("a")
        await asyncio.sleep(1.5)
        assert slow.calls.count("a") == calls_a  # removed: polled no more
    finally:
        await sched.shutdown()


async def test_jobs_use_coalesce_one_instance_a_misfire_grace_of_half_the_interval_and_jitter():
    rec = Recorder()
    sched = scheduler({"slow": SlowSource(0)}, rec, startup_spread_s=60)
    sched.start([Watch(id="a", kind="query", targets={"slow": "q"}, interval=120)])
    try:
        job = sched._scheduler.get_job("slow:a")
        assert (job.coalesce, job.max_instances, job.misfire_grace_time) == (True, 1, 60)
        assert job.trigger.jitter == pytest.approx(12)
    finally:
        await sched.shutdown()


async def test_platforms_without_a_sources_section_are_reported_not_polled():
    rec = Recorder()
    sched = scheduler({"slow": SlowSource(0)}, rec)
    sched.start([Watch(id="a", kind="query", targets={"slow": "q", "x": "q"})])
    try:
        assert sched.job_keys == ["slow:a"] and sched.unconfigured == ["x:a"]
    finally:
        await sched.shutdown()


async def test_shutdown_lets_a_running_poll_finish_within_the_bound():
    slow = SlowSource(0.5)
    rec = Recorder()
    sched = scheduler({"slow": slow}, rec)
    sched.start([Watch(id="a", kind="query", targets={"slow": "q"}, interval=60)])
    await wait_for(lambda: slow.running == 1)
    await sched.shutdown(timeout_s=5)
    assert len(rec.batches) == 1  # finished and handed over


async def test_shutdown_cancels_a_poll_that_outlives_the_bound():
    slow = SlowSource(30)
    rec = Recorder()
    sched = scheduler({"slow": slow}, rec)
    sched.start([Watch(id="a", kind="query", targets={"slow": "q"}, interval=60)])
    await wait_for(lambda: slow.running == 1)
    started = asyncio.get_running_loop().time()
    await sched.shutdown(timeout_s=0.2)
    assert asyncio.get_running_loop().time() - started < 3
    assert slow.running == 0 and rec.batches == []


async def test_scheduled_polls_store_mentions_and_cursors_through_the_pipeline(masto, session, tmp_path: Path):
    store = Store(tmp_path / "listener.db")
    pipeline = Pipeline(store, SentimentScorer(), Engine([]))

    async def on_batch(watch: Watch, key: str, batch: Batch) -> None:
        pipeline.ingest(batch.mentions, cursor=(key, batch.next_cursor) if batch.next_cursor else None)

    masto.publish(2)
    sched = PollScheduler(
        {"mastodon": masto.source(session)}, get_cursor=store.get_cursor, on_batch=on_batch, startup_spread_s=0
    )
    sched.start([Watch(id="tag", kind="hashtag", targets={"mastodon": "MetroPolice"}, interval=1)])
    try:
        await wait_for(lambda: store.mention_count() == 2)
        masto.publish(3)
        await wait_for(lambda: store.mention_count() == 5)
    finally:
        await sched.shutdown()
    newest = max(s.id for s in masto.statuses)
    assert store.get_cursor("mastodon:tag") == f'{{"min_id":"{newest}"}}'
    store.close()


async def test_public_platforms_need_no_sources_section_but_others_do(session):
    from listener.sources import build_sources
    from listener.sources.settings import SourcesConfig

    built = build_sources(SourcesConfig(), session, needed=["rss", "mastodon", "x", "bluesky"])
    assert sorted(built) == ["mastodon", "rss"]  # X and Bluesky search need credentials
    assert build_sources(SourcesConfig(), session) == {}


async def test_a_store_that_cannot_keep_a_batch_is_named_and_the_poll_tried_again():
    """A full disk is not the platform's fault: the watch's health names the store, nothing escapes
    the job, and the poll is tried again after a backoff (the cursor did not move)."""
    from listener.errors import StoreError

    slow = SlowSource(0.0)
    rec = Recorder()
    failures = 0

    async def on_batch(watch: Watch, key: str, batch: Batch) -> None:
        nonlocal failures
        failures += 1
        raise StoreError("database or disk is full")

    sched = PollScheduler({"slow": slow}, get_cursor=lambda key: None, on_batch=on_batch, on_poll=rec.on_poll,
                          startup_spread_s=0, backoff_base_s=0.1, backoff_max_s=0.2)
    sched.start([Watch(id="tag", kind="hashtag", targets={"slow": "q"}, interval=1)])
    try:
        await wait_for(lambda: failures >= 2, timeout_s=10)
    finally:
        await sched.shutdown()
    assert rec.polls[0] == ("slow:tag", False, "store: database or disk is full")
    assert sched.health["slow:tag"].last_error == "store: database or disk is full"
