"""Detection latency: from the moment a backlash becomes visible at the source to the alert on the broker.

Each run, a fake platform makes a wave of negative replies to one of our posts visible at a
known moment T, at a random phase of the poll cycle. Whatever the variant under test is polls
the platform, runs the ingest path and publishes; a subscriber on a private mosquitto records
when the `backlash-on-post` alert for that thread arrives (R). Latency = R - T, over many runs:
p50 and p99. Goal: within one poll interval plus one second.

Variants (`--variant`):
  inprocess  A poll loop in this process: a fake Source (the `fetch(watch, target, cursor)`
             contract of listener/sources/base.py) polled every `--interval` seconds on a
             fixed-rate schedule, `Pipeline.ingest` with the shipped rules and a real SQLite
             file, then `drain_outbox` through `MqttPublisher` (QoS 1). Everything the daemon
             does per poll, minus the scheduler and the HTTP round trip.
The daemon variant (`listener run` against fake platform HTTP servers) and the Bluesky
Jetstream variant plug in as further `Variant` classes: `start(broker_url, prefix)`,
`release(mentions)` to make posts visible now, `polls` for the per-poll breakdown, `stop()`.

    python bench/bench_latency.py                         # 20 runs, 5 s poll interval
    python bench/bench_latency.py --runs 50 --interval 2
"""

from __future__ import annotations

import asyncio
import json
import random
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, Sequence

import aiomqtt
import benchlib
from streams import StreamSpec, backlash_wave, mentions as stream_mentions

from listener.mention import Mention
from listener.pipeline import Pipeline
from listener.publish import MqttPublisher, drain_outbox, parse_broker_url
from listener.rules import load_rules
from listener.rules.engine import Engine
from listener.sentiment import SentimentScorer
from listener.sources.base import Batch, Watch
from listener.store import Store

NAME = "latency"
RULE = "backlash-on-post"
PREFIX = "bench-latency"


@dataclass
class Poll:
    """What one poll cycle did, on the monotonic clock."""

    fetched_t: float
    ingested_t: float
    published_t: float
    mentions: int
    alerts: int


class Variant(Protocol):
    name: str
    description: str
    polls: list[Poll]

    async def start(self, broker_url: str, prefix: str) -> None: ...

    def release(self, mentions: list[dict[str, Any]]) -> None: ...

    async def stop(self) -> None: ...


class FakePlatform:
    """A platform whose posts become visible when released; `fetch` returns what is new since the cursor."""

    platform = "x"

    def __init__(self) -> None:
        self._posts: list[tuple[int, dict[str, Any]]] = []
        self._seq = 0

    def release(self, posts: list[dict[str, Any]]) -> None:
        for post in posts:
            self._seq += 1
            self._posts.append((self._seq, post))

    async def fetch(self, watch: Watch, target: str, cursor: str | None) -> Batch:
        after = int(cursor or 0)
        new = [p for seq, p in self._posts if seq > after]
        self._posts = [(seq, p) for seq, p in self._posts if seq > after]  # delivered: keep memory bounded
        return Batch([Mention.from_dict(p) for p in new], str(self._seq))


class InProcessPoll:
    """Fixed-rate polling of a fake source through Pipeline.ingest and drain_outbox, in this process."""

    name = "inprocess"
    description = ("in-process poll loop: fake Source -> Pipeline.ingest (shipped rules, SQLite file) -> "
                   "drain_outbox -> MqttPublisher (QoS 1)")

    def __init__(self, interval_s: float, noise_per_poll: int, db_path: Path, seed: int) -> None:
        self.interval_s = interval_s
        self.noise_per_poll = noise_per_poll
        self.db_path = db_path
        self.platform = FakePlatform()
        self.noise = stream_mentions(StreamSpec(n=10**9, seed=seed))
        self.polls: list[Poll] = []
        self._task: asyncio.Task[None] | None = None
        self._store: Store | None = None
        self._publisher: MqttPublisher | None = None

    async def start(self, broker_url: str, prefix: str) -> None:
        self._store = Store(self.db_path)
        pipeline = Pipeline(self._store, SentimentScorer(), Engine(load_rules([benchlib.SHIPPED_RULES]).rules))
        self._publisher = MqttPublisher(parse_broker_url(broker_url, prefix=prefix, client_id="bench-latency-pub"))
        await self._publisher.__aenter__()
        self._task = asyncio.create_task(self._loop(pipeline, self._store, self._publisher))

    def release(self, mentions: list[dict[str, Any]]) -> None:
        self.platform.release(mentions)

    async def _loop(self, pipeline: Pipeline, store: Store, publisher: MqttPublisher) -> None:
        watch = Watch(id="lipsync-post", kind="post", targets={"x": "1860000000000000002"})
        loop = asyncio.get_running_loop()
        start = loop.time()
        tick = 0
        cursor: str | None = None
        while True:
            tick += 1
            self._add_noise()
            fetched = time.monotonic()
            batch = await self.platform.fetch(watch, "1860000000000000002", cursor)
            result = pipeline.ingest(batch.mentions, cursor=("x:lipsync-post", batch.next_cursor or ""))
            cursor = batch.next_cursor
            ingested = time.monotonic()
            await drain_outbox(store, publisher)
            self.polls.append(Poll(fetched, ingested, time.monotonic(), len(batch.mentions), len(result.alerts)))
            # Fixed rate, like APScheduler's interval trigger: a slow poll does not shift the schedule.
            await asyncio.sleep(max(0.0, start + tick * self.interval_s - loop.time()))

    def _add_noise(self) -> None:
        """Ordinary traffic, so every poll carries a realistic batch; stamped now so it is current."""
        now = _iso_now()
        self.platform.release([{**next(self.noise), "created_at": now} for _ in range(self.noise_per_poll)])

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        if self._publisher is not None:
            await self._publisher.__aexit__(None, None, None)
        if self._store is not None:
            self._store.close()


def _iso_now() -> str:
    from listener.mention import format_time, from_ts

    return format_time(from_ts(time.time()))


@dataclass
class Subscriber:
    """Records when each firing alert of RULE arrives, by thread."""

    broker_url: str
    prefix: str
    arrived: dict[str, float] = field(default_factory=dict)
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self) -> None:
        settings = parse_broker_url(self.broker_url)
        async with aiomqtt.Client(settings.host, settings.port, identifier="bench-latency-sub") as client:
            await client.subscribe(f"{self.prefix}/alerts/#", qos=1)
            self.ready.set()
            async for message in client.messages:
                received = time.monotonic()
                payload = json.loads(bytes(message.payload))  # type: ignore[arg-type]
                if payload.get("rule") == RULE and payload.get("status") == "firing":
                    thread = payload.get("group", {}).get("values", {}).get("thread") or _thread_of(payload)
                    self.arrived.setdefault(thread, received)
                    self.changed.set()

    async def wait_for(self, thread: str, timeout_s: float) -> float | None:
        deadline = time.monotonic() + timeout_s
        while thread not in self.arrived:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), left)
            except asyncio.TimeoutError:
                return None
        return self.arrived[thread]


def _thread_of(payload: dict[str, Any]) -> str:
    group = payload.get("group")
    if isinstance(group, dict):
        key = group.get("key") or ""
        for part in str(key).split(","):
            if part.startswith("thread="):
                return part.removeprefix("thread=")
    return ""


async def measure(variant: Variant, runs: int, interval_s: float, wave_size: int, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    timings: list[tuple[float, float]] = []  # (released, arrived) per run that alerted
    missed = 0
    with benchlib.private_broker() as url:
        subscriber = Subscriber(url, PREFIX)
        sub_task = asyncio.create_task(subscriber.run())
        await asyncio.wait_for(subscriber.ready.wait(), 10)
        await variant.start(url, PREFIX)
        try:
            for run in range(runs):
                # A random phase of the poll cycle, so waits are spread over the whole interval.
                await asyncio.sleep(rng.uniform(0, interval_s))
                root = f"1870000000{seed:04d}{run:05d}"
                wave = backlash_wave(rng, "x", root, size=wave_size, created_ts=time.time())
                released = time.monotonic()
                variant.release(wave)
                arrived = await subscriber.wait_for(root, timeout_s=3 * interval_s + 10)
                if arrived is None:
                    missed += 1
                else:
                    timings.append((released, arrived))
            # The subscriber can hear an alert before its poll has recorded itself: let the last one finish.
            deadline = time.monotonic() + 2 * interval_s + 5
            while timings and time.monotonic() < deadline and not any(
                    p.fetched_t >= timings[-1][0] for p in variant.polls):
                await asyncio.sleep(0.01)
        finally:
            await variant.stop()
            sub_task.cancel()
            try:
                await sub_task
            except (asyncio.CancelledError, aiomqtt.MqttError):
                pass
    samples: list[dict[str, float]] = []
    for released, arrived in timings:
        sample = {"latency_s": arrived - released}
        poll = next((p for p in variant.polls if p.fetched_t >= released), None)
        if poll is not None:
            sample.update(wait_s=poll.fetched_t - released, ingest_s=poll.ingested_t - poll.fetched_t,
                          publish_s=poll.published_t - poll.ingested_t, poll_mentions=poll.mentions)
        samples.append(sample)
    return {"samples": samples, "missed": missed}


def summarize(values: Sequence[float]) -> dict[str, float]:
    return {"p50": benchlib.percentile(values, 50), "p99": benchlib.percentile(values, 99),
            "max": max(values), "mean": statistics.fmean(values)}


def main(argv: Sequence[str] | None = None) -> int:
    p = benchlib.parser(NAME, __doc__.splitlines()[0])
    p.add_argument("--variant", choices=["inprocess"], default="inprocess", help="what to measure (default inprocess)")
    p.add_argument("--runs", type=int, default=20, help="backlash waves, one per run (default 20)")
    p.add_argument("--interval", type=float, default=5.0, help="poll interval in seconds (default 5)")
    p.add_argument("--wave", type=int, default=16, help="negative replies per wave (default 16; the rule needs 12)")
    p.add_argument("--noise", type=int, default=50, help="ordinary mentions added per poll (default 50)")
    p.add_argument("--seed", type=int, default=7, help="seed for phases and texts (default 7)")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-latency-") as tmp:
        variant = InProcessPoll(args.interval, args.noise, Path(tmp) / "latency.db", args.seed)
        outcome = asyncio.run(measure(variant, args.runs, args.interval, args.wave, args.seed))
    samples = outcome["samples"]
    goal_s = args.interval + 1.0
    print(f"Detection latency, variant {variant.name}: {variant.description}")
    print(f"{args.runs} runs, poll interval {args.interval:g} s, waves of {args.wave} replies, "
          f"{args.noise} other mentions per poll; {outcome['missed']} runs without an alert\n")
    summary: dict[str, Any] = {}
    if samples:
        rows = []
        for key, label in (("latency_s", "visible -> alert received"), ("wait_s", "  visible -> polled"),
                           ("ingest_s", "  polled -> ingested (store, VADER, rules, outbox)"),
                           ("publish_s", "  ingested -> PUBACK (drain_outbox)")):
            values = [s[key] for s in samples if key in s]
            if values:
                summary[key] = {k: round(v, 4) for k, v in summarize(values).items()}
                rows.append([label, *(summary[key][k] * 1000 for k in ("p50", "p99", "max"))])
        print(benchlib.table(["stage", "p50 ms", "p99 ms", "max ms"], rows))
    met = bool(samples) and outcome["missed"] == 0 and summary["latency_s"]["p99"] <= goal_s
    print(f"\nGoal: p99 within one poll interval plus one second ({goal_s:g} s): {benchlib.verdict(met)}")
    path = benchlib.write_result(NAME, args.out, {
        "variant": variant.name, "variant_description": variant.description, "runs": args.runs,
        "interval_s": args.interval, "wave": args.wave, "noise_per_poll": args.noise, "missed": outcome["missed"],
        "summary": summary, "samples": [{k: round(v, 5) for k, v in s.items()} for s in samples],
        "goal": {"p99_at_most_s": goal_s, "met": met},
    })
    print(f"\nwritten: {path}")
    return 0 if outcome["missed"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
