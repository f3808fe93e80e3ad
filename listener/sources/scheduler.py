"""The poll schedule: one APScheduler job per watch × platform, polite, bounded, and reconfigurable.

Each job runs `source.fetch` for its watch and hands the batch to `on_batch`, which stores the
mentions and the job's cursor in one transaction; the scheduler never writes a cursor itself.
A job that fails backs off (exponentially with jitter on outages, until the reset on a 429)
and reports its health; one broken platform never delays the others, and a per-platform
semaphore keeps 200 watches from firing 200 requests at once.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Awaitable, Callable, Mapping, Sequence

from apscheduler.events import EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED, EVENT_JOB_SUBMITTED, JobEvent
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from listener.errors import RateLimitedError, SourceError, StoreError
from listener.sources.base import Batch, Source, SourceHealth, Watch
from listener.sources.http import Clock

log = logging.getLogger(__name__)

OnBatch = Callable[[Watch, str, Batch], Awaitable[None]]
OnPoll = Callable[[str, bool, str | None], None]


@dataclass
class _Job:
    key: str
    platform: str
    target: str
    watch: Watch


class PollScheduler:
    """Polls every watch × platform on its interval with APScheduler's AsyncIOScheduler."""

    def __init__(
        self,
        sources: Mapping[str, Source],
        *,
        get_cursor: Callable[[str], str | None],
        on_batch: OnBatch,
        on_poll: OnPoll | None = None,
        max_concurrent_per_platform: int = 4,
        jitter_ratio: float = 0.1,
        poll_timeout_s: float = 120.0,
        backoff_base_s: float = 30.0,
        backoff_max_s: float = 1800.0,
        startup_spread_s: float = 10.0,
        clock: Clock = time.time,
    ) -> None:
        self.sources = dict(sources)
        self.get_cursor = get_cursor
        self.on_batch = on_batch
        self.on_poll = on_poll
        self.jitter_ratio = jitter_ratio
        self.poll_timeout_s = poll_timeout_s
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self.startup_spread_s = startup_spread_s
        self.clock = clock
        self._limits = {p: asyncio.Semaphore(max_concurrent_per_platform) for p in self.sources}
        self._jobs: dict[str, _Job] = {}
        self._health: dict[str, SourceHealth] = {}
        self._scheduled: dict[str, datetime] = {}
        self._inflight: set[asyncio.Task[Any]] = set()
        self.lateness_s: deque[float] = deque(maxlen=10_000)  # poll start minus scheduled time
        self.missed = 0
        self.skipped_overlap = 0
        self.unconfigured: list[str] = []
        self._scheduler = AsyncIOScheduler(timezone=timezone.utc)
        self._scheduler.add_listener(self._on_event, EVENT_JOB_SUBMITTED | EVENT_JOB_MISSED | EVENT_JOB_MAX_INSTANCES)
        self._started = False

    @property
    def health(self) -> Mapping[str, SourceHealth]:
        """Per job key (`platform:watch`): last success, last error, backoff."""
        return self._health

    @property
    def job_keys(self) -> list[str]:
        return sorted(self._jobs)

    def start(self, watches: Sequence[Watch]) -> None:
        """Schedule the watches and start polling (on the running event loop)."""
        if not self._started:
            self._scheduler.start()
            self._started = True
        self.update(watches)

    def update(self, watches: Sequence[Watch]) -> None:
        """Add, remove and reschedule jobs to match `watches`; running polls are left to finish."""
        wanted: dict[str, _Job] = {}
        unconfigured: list[str] = []
        for watch in watches:
            for platform, target in watch.jobs():
                key = Watch.job_key(platform, watch.id)
                if platform not in self.sources:
                    unconfigured.append(key)
                    continue
                wanted[key] = _Job(key, platform, target, watch)
        if unconfigured and unconfigured != self.unconfigured:
            log.warning("not polled, no sources section for their platform: %s", ", ".join(unconfigured))
        self.unconfigured = unconfigured
        for key in list(self._jobs):
            if key not in wanted:
                self._scheduler.remove_job(key)
                del self._jobs[key]
                self._health.pop(key, None)
        now = datetime.now(timezone.utc)
        for key, job in wanted.items():
            old = self._jobs.get(key)
            self._jobs[key] = job
            if old is None:
                first = now + timedelta(seconds=random.uniform(0, min(job.watch.interval, self.startup_spread_s)))
                self._scheduler.add_job(
                    self._run,
                    self._trigger(job.watch),
                    args=[key],
                    id=key,
                    name=key,
                    next_run_time=first,
                    **self._job_options(job.watch),
                )
                self._health[key] = SourceHealth(key)
            elif old.watch.interval != job.watch.interval:
                self._scheduler.modify_job(key, **self._job_options(job.watch))
                self._scheduler.reschedule_job(key, trigger=self._trigger(job.watch))

    def _trigger(self, watch: Watch) -> IntervalTrigger:
        return IntervalTrigger(
            seconds=watch.interval, jitter=watch.interval * self.jitter_ratio or None, timezone=timezone.utc
        )

    @staticmethod
    def _job_options(watch: Watch) -> dict[str, Any]:
        # APScheduler's 1 s default grace drops runs after any event-loop hiccup; half an interval does not.
        return {"max_instances": 1, "coalesce": True, "misfire_grace_time": max(1, int(watch.interval / 2))}

    async def shutdown(self, timeout_s: float = 10.0) -> None:
        """Stop scheduling; let running polls finish for up to `timeout_s`, then cancel them."""
        if not self._started:
            return
        # Pause first: APScheduler's shutdown cancels running coroutine jobs, which would cut polls short.
        self._scheduler.pause()
        running = {t for t in self._inflight if not t.done()}
        if running:
            _, late = await asyncio.wait(running, timeout=timeout_s)
            for task in late:
                task.cancel()
            if late:
                await asyncio.wait(late, timeout=1.0)
                log.warning("shutdown: cancelled %d polls still running after %.0fs", len(late), timeout_s)
        self._scheduler.shutdown(wait=False)
        self._started = False

    def _on_event(self, event: JobEvent) -> None:
        if event.code == EVENT_JOB_SUBMITTED:
            times = getattr(event, "scheduled_run_times", None)
            if times:
                self._scheduled[event.job_id] = times[-1]
        elif event.code == EVENT_JOB_MISSED:
            self.missed += 1
            log.warning("poll %s missed its run time (the event loop was blocked)", event.job_id)
        else:
            self.skipped_overlap += 1
            log.info("poll %s still running at its next run time; that run is skipped", event.job_id)

    async def run_once(self, key: str) -> None:
        """One poll of one job, now (what each scheduled run does)."""
        await self._run(key)

    async def _run(self, key: str) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._inflight.add(task)
            task.add_done_callback(self._inflight.discard)
        job = self._jobs.get(key)
        health = self._health.get(key)
        if job is None or health is None:
            return  # removed while waiting to run
        if health.backoff_until_ts is not None and self.clock() < health.backoff_until_ts:
            return
        async with self._limits[job.platform]:
            scheduled = self._scheduled.pop(key, None)
            if scheduled is not None:
                self.lateness_s.append((datetime.now(timezone.utc) - scheduled).total_seconds())
            await self._poll(job, health)

    async def _poll(self, job: _Job, health: SourceHealth) -> None:
        source = self.sources[job.platform]
        try:
            cursor = self.get_cursor(job.key)
            batch = await asyncio.wait_for(source.fetch(job.watch, job.target, cursor), self.poll_timeout_s)
            await self.on_batch(job.watch, job.key, batch)
        except asyncio.CancelledError:
            raise
        except RateLimitedError as exc:
            self._failed(health, str(exc), exc.retry_after_s)
        except SourceError as exc:
            self._failed(health, str(exc), self._backoff_s(health))
        except StoreError as exc:  # fetched, but not kept: the cursor stays, the poll is tried again
            self._failed(health, f"store: {exc}", self._backoff_s(health))
        except asyncio.TimeoutError:
            self._failed(
                health, f"{job.platform}: poll took longer than {self.poll_timeout_s:g}s", self._backoff_s(health)
            )
        except Exception as exc:  # a bug in one source must not stop the others
            log.exception("poll %s failed unexpectedly", job.key)
            self._failed(
                health, f"{job.platform}: internal error: {type(exc).__name__}: {exc}", self._backoff_s(health)
            )
        else:
            health.last_success_ts = self.clock()
            health.consecutive_failures = 0
            health.backoff_until_ts = None
            health.mentions_total += len(batch.mentions)
            self._extra(job, health)
            if self.on_poll:
                self.on_poll(job.key, True, None)
            return
        self._extra(job, health)
        if self.on_poll:
            self.on_poll(job.key, False, health.last_error)

    def _backoff_s(self, health: SourceHealth) -> float:
        # consecutive_failures is not yet counted for this failure
        exponent = min(health.consecutive_failures, 16)
        return random.uniform(0.5, 1.0) * min(self.backoff_max_s, self.backoff_base_s * 2.0**exponent)

    def _failed(self, health: SourceHealth, error: str, wait_s: float) -> None:
        now = self.clock()
        health.consecutive_failures += 1
        health.last_error_ts = now
        health.last_error = error
        health.backoff_until_ts = now + wait_s
        log.warning("%s: %s (retry in %.0fs)", health.key, error, wait_s)

    def _extra(self, job: _Job, health: SourceHealth) -> None:
        http = getattr(self.sources[job.platform], "http", None)
        politeness = getattr(http, "politeness", None)
        if politeness is not None:
            health.extra = politeness.state()
