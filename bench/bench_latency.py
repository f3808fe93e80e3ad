"""Detection latency: from the moment a backlash becomes visible at the source to the alert on the broker.

Each run, a fake platform first shows all but the last of a wave of hostile replies to a new
post of ours, then, at a random moment up to one poll interval later (Jetstream: up to `--gap`
seconds later), the reply that completes the wave (which one completes it is found by running
the shipped rules over the wave in this process).
That moment is T. Whatever the variant under test is polls or streams the platform, runs the
ingest path with the shipped rules (`rules/`, `backlash-on-post`) and publishes; a subscriber
on a private mosquitto records when the alert for that thread arrives (R). Latency = R - T,
over many runs: p50, p99 and max, with a breakdown by stage. Goals: polling, within one poll
interval plus one second; Bluesky Jetstream, under one second.

Variants (`--variant`, several allowed; default all three):
  daemon     `listener run` as a subprocess: a fake X API server (tests/fakes/x.py) polled
             every `--interval` seconds for mentions of our account, by the daemon's scheduler,
             HTTP source, pipeline and outbox relay. Also samples the daemon's RSS.
  jetstream  `listener run` with Bluesky Jetstream enabled: a fake Jetstream
             (tests/fakes/jetstream.py) pushes the wave over its WebSocket amid a firehose of
             other posts (a few name our handle, and match); Bluesky search is polled too, against a
             fake that finds nothing.
             `--flush S` sets the daemon's `jetstream.flush_s`, the batching that bounds this wait.
  inprocess  A poll loop in this process: a fake Source polled on a fixed-rate schedule,
             `Pipeline.ingest` and `drain_outbox` through `MqttPublisher`. The daemon's work per
             poll, minus the scheduler, the HTTP round trip and the relay: the floor.

    python bench/bench_latency.py                          # all variants, 30 runs each, 5 s polls
    python bench/bench_latency.py --variant jetstream --runs 50
    python bench/bench_latency.py --variant daemon --interval 10
    python bench/bench_latency.py --variant jetstream --flush 0.25

The daemon variants start the fake servers of tests/fakes/ (they need the test extras:
`./dev test` installs them, or `pip install -e '.[test]'`).
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

from listener.mention import Mention, format_time, from_ts
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
VARIANTS = ("daemon", "jetstream", "inprocess")
JETSTREAM_GOAL_S = 1.0


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
    platform: str  # the platform the waves are posted on
    phase_s: float  # the completing post comes at a random moment in [0, phase_s) after the rest
    goal_s: float  # p99 at most this

    def root(self, run: int, seed: int) -> str:
        """The post a run's wave replies to, as alerts name its thread."""
        ...

    async def start(self, broker_url: str, prefix: str) -> None: ...

    def release(self, mentions: list[dict[str, Any]]) -> None:
        """Make these posts visible at the source now."""
        ...

    def milestones(self, root: str, released_t: float) -> tuple[float | None, float | None]:
        """(polled, alert raised) for the wave on `root` completed at `released_t`, monotonic; None if not seen."""
        ...

    def report(self) -> dict[str, Any]:
        """Figures of the variant's own to add to the result (e.g. the daemon's RSS)."""
        ...

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
    platform = "x"

    def __init__(self, interval_s: float, noise_per_poll: int, db_path: Path, seed: int) -> None:
        self.interval_s = self.phase_s = interval_s
        self.goal_s = interval_s + 1.0
        self.noise_per_poll = noise_per_poll
        self.db_path = db_path
        self.platform_fake = FakePlatform()
        self.noise = stream_mentions(StreamSpec(n=10**9, seed=seed))
        self.polls: list[Poll] = []
        self._task: asyncio.Task[None] | None = None
        self._store: Store | None = None
        self._publisher: MqttPublisher | None = None

    def root(self, run: int, seed: int) -> str:
        return f"1870000000{seed:04d}{run:05d}"

    async def start(self, broker_url: str, prefix: str) -> None:
        self._store = Store(self.db_path)
        pipeline = Pipeline(self._store, SentimentScorer(), Engine(load_rules([benchlib.SHIPPED_RULES]).rules))
        self._publisher = MqttPublisher(parse_broker_url(broker_url, prefix=prefix, client_id="bench-latency-pub"))
        await self._publisher.__aenter__()
        self._task = asyncio.create_task(self._loop(pipeline, self._store, self._publisher))

    def release(self, mentions: list[dict[str, Any]]) -> None:
        self.platform_fake.release(mentions)

    def milestones(self, root: str, released_t: float) -> tuple[float | None, float | None]:
        poll = next((p for p in self.polls if p.fetched_t >= released_t), None)
        return (poll.fetched_t, poll.ingested_t) if poll is not None else (None, None)

    def report(self) -> dict[str, Any]:
        return {}

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
            batch = await self.platform_fake.fetch(watch, "1860000000000000002", cursor)
            result = pipeline.ingest(batch.mentions, cursor=("x:lipsync-post", batch.next_cursor or ""))
            cursor = batch.next_cursor
            ingested = time.monotonic()
            await drain_outbox(store, publisher)
            self.polls.append(Poll(fetched, ingested, time.monotonic(), len(batch.mentions), len(result.alerts)))
            # Fixed rate, like APScheduler's interval trigger: a slow poll does not shift the schedule.
            await asyncio.sleep(max(0.0, start + tick * self.interval_s - loop.time()))

    def _add_noise(self) -> None:
        """Ordinary traffic, so every poll carries a realistic batch; stamped now so it is current."""
        now = iso_now()
        self.platform_fake.release([{**next(self.noise), "created_at": now} for _ in range(self.noise_per_poll)])

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


def iso_now() -> str:
    return format_time(from_ts(time.time()))


class WaveCut:
    """Which reply completes a wave: the shipped rules, run over the wave alone as the daemon's would see it."""

    def __init__(self) -> None:
        self.scorer = SentimentScorer()
        self.engine = Engine(load_rules([benchlib.SHIPPED_RULES]).rules)

    def completing(self, wave: list[dict[str, Any]]) -> int:
        """Index of the reply after which RULE fires for the wave's thread."""
        for i, post in enumerate(wave):
            alerts = self.engine.process(self.scorer.score_mentions([Mention.from_dict(post)]))
            if any(a.rule == RULE and a.status == "firing" for a in alerts):
                return i
        raise SystemExit(f"a wave of {len(wave)} replies does not fire {RULE}: raise --wave")


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
        identifier = f"bench-latency-sub-{self.prefix}"
        async with aiomqtt.Client(settings.host, settings.port, identifier=identifier) as client:
            await client.subscribe(f"{self.prefix}/alerts/#", qos=1)
            self.ready.set()
            async for message in client.messages:
                received = time.monotonic()
                payload = json.loads(bytes(message.payload))  # type: ignore[arg-type]
                if payload.get("rule") == RULE and payload.get("status") == "firing":
                    thread = payload.get("group", {}).get("values", {}).get("thread", "")
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


async def measure(variant: Variant, broker_url: str, runs: int, wave_size: int, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    cut = WaveCut()
    timings: list[tuple[str, float, float]] = []  # (thread, completing reply visible, alert received) per alert
    missed: list[str] = []  # threads whose wave raised no alert in time
    early = 0
    prefix = f"{PREFIX}-{variant.name}"
    subscriber = Subscriber(broker_url, prefix)
    sub_task = asyncio.create_task(subscriber.run())
    await asyncio.wait_for(subscriber.ready.wait(), 10)
    await variant.start(broker_url, prefix)
    try:
        for run in range(runs):
            root = variant.root(run, seed)
            wave = backlash_wave(rng, variant.platform, root, size=wave_size, created_ts=time.time())
            last = cut.completing(wave)
            variant.release(wave[:last])
            # A random phase of the poll cycle, so waits are spread over the whole interval.
            await asyncio.sleep(rng.uniform(0, variant.phase_s))
            released = time.monotonic()
            variant.release([{**wave[last], "created_at": iso_now()}])
            arrived = await subscriber.wait_for(root, timeout_s=3 * variant.phase_s + 10)
            if arrived is None:
                missed.append(root)
            elif arrived < released:
                early += 1  # the wave fired before its completing reply: not a measurement
            else:
                timings.append((root, released, arrived))
        # The subscriber can hear an alert before its poll has recorded itself: let the last one finish.
        deadline = time.monotonic() + 2 * variant.phase_s + 5
        while timings and time.monotonic() < deadline and variant.milestones(*timings[-1][:2])[1] is None:
            await asyncio.sleep(0.05)
    finally:
        await variant.stop()
        sub_task.cancel()
        try:
            await sub_task
        except (asyncio.CancelledError, aiomqtt.MqttError):
            pass
    samples: list[dict[str, float]] = []
    for root, released, arrived in timings:
        sample = {"latency_s": arrived - released}
        polled, raised = variant.milestones(root, released)
        if polled is not None:
            sample["wait_s"] = polled - released
            if raised is not None:
                sample["process_s"] = raised - polled
        if raised is not None:
            sample["detect_s"] = raised - released
            sample["deliver_s"] = arrived - raised
        samples.append(sample)
    return {"samples": samples, "missed": len(missed), "missed_threads": missed, "early": early}


def summarize(values: Sequence[float]) -> dict[str, float]:
    return {"p50": benchlib.percentile(values, 50), "p99": benchlib.percentile(values, 99),
            "max": max(values), "mean": statistics.fmean(values)}


STAGES = (
    ("latency_s", "visible -> alert received"),
    ("wait_s", "  visible -> polled (request reaches the source)"),
    ("process_s", "  polled -> alert raised (fetch, store, VADER, rules, outbox)"),
    ("detect_s", "  visible -> alert raised"),
    ("deliver_s", "  alert raised -> received (relay, broker, subscriber)"),
)


def report(variant: Variant, outcome: dict[str, Any], runs: int) -> dict[str, Any]:
    """Print one variant's table and verdict; return its part of the JSON result."""
    samples = outcome["samples"]
    print(f"\n--- variant {variant.name}: {variant.description}")
    print(f"{runs} runs; {outcome['missed']} without an alert, {outcome['early']} fired before the completing reply\n")
    summary: dict[str, Any] = {}
    rows = []
    for key, label in STAGES:
        values = [s[key] for s in samples if key in s]
        if values:
            summary[key] = {k: round(v, 4) for k, v in summarize(values).items()}
            rows.append([label, *(summary[key][k] * 1000 for k in ("p50", "p99", "max"))])
    if rows:
        print(benchlib.table(["stage", "p50 ms", "p99 ms", "max ms"], rows))
    extra = variant.report()
    if "rss_mb" in extra:
        rss = extra["rss_mb"]
        print(f"\ndaemon RSS: {rss['first']:.1f} MB after start-up, {rss['last']:.1f} MB at the end, "
              f"max {rss['max']:.1f} MB (VmHWM {rss['hwm']:.1f} MB), {rss['samples']} samples")
    if "poll_gap_s" in extra:
        gap = extra["poll_gap_s"]
        print(f"polls of the fake: {gap['polls']}, {gap['min']:.2f} to {gap['max']:.2f} s apart "
              f"(median {gap['p50']:.2f})")
    if extra.get("exit_code") not in (None, 0):
        print(f"\nthe daemon exited with {extra['exit_code']} on SIGTERM (expected 0)")
    met = bool(samples) and outcome["missed"] == 0 and outcome["early"] == 0 and \
        summary["latency_s"]["p99"] < variant.goal_s
    print(f"\nGoal: p99 under {variant.goal_s:g} s: {benchlib.verdict(met)}")
    return {"description": variant.description, "missed": outcome["missed"],
            "missed_threads": outcome["missed_threads"], "early": outcome["early"],
            "summary": summary, "samples": [{k: round(v, 5) for k, v in s.items()} for s in samples],
            "goal": {"p99_under_s": variant.goal_s, "met": met}, **extra}


def make_variant(name: str, args: Any, tmp: Path) -> Variant:
    if name == "inprocess":
        return InProcessPoll(args.interval, args.noise, tmp / "inprocess.db", args.seed)
    import latency_daemon  # the daemon variants need the test fakes (tests/ on sys.path)

    if name == "daemon":
        return latency_daemon.DaemonPoll(tmp / "daemon", args.interval, noise_per_s=args.noise / args.interval,
                                         seed=args.seed)
    return latency_daemon.DaemonJetstream(tmp / "jetstream", args.interval, firehose_per_s=args.firehose,
                                          goal_s=JETSTREAM_GOAL_S, phase_s=args.gap, seed=args.seed,
                                          flush_s=args.flush)


async def measure_all(names: Sequence[str], args: Any, tmp: Path) -> dict[str, Any]:
    results: dict[str, Any] = {}
    with benchlib.private_broker() as url:
        for name in names:
            variant = make_variant(name, args, tmp)
            outcome = await measure(variant, url, args.runs, args.wave, args.seed)
            results[name] = report(variant, outcome, args.runs)
    return results


def main(argv: Sequence[str] | None = None) -> int:
    p = benchlib.parser(NAME, __doc__.splitlines()[0])
    p.add_argument("--variant", nargs="+", choices=VARIANTS, default=list(VARIANTS),
                   help="what to measure (default: all of them)")
    p.add_argument("--runs", type=int, default=30, help="backlash waves per variant (default 30)")
    p.add_argument("--interval", type=float, default=5.0, help="poll interval in seconds (default 5; the daemon's "
                   "minimum is 1)")
    p.add_argument("--wave", type=int, default=16, help="hostile replies generated per wave; the rules decide which "
                   "completes it (default 16)")
    p.add_argument("--noise", type=int, default=50, help="ordinary mentions per poll interval (default 50)")
    p.add_argument("--firehose", type=float, default=50.0, help="other posts per second on the fake Jetstream "
                   "(default 50)")
    p.add_argument("--gap", type=float, default=2.0, help="Jetstream: the completing reply follows the rest of "
                   "its wave by a random 0 to GAP seconds (default 2)")
    p.add_argument("--flush", type=float, default=None, help="Jetstream: the daemon's `jetstream.flush_s` "
                   "(default: the daemon's own default)")
    p.add_argument("--keep", type=Path, default=None, metavar="DIR", help="keep each daemon's config, log and "
                   "SQLite store in DIR/<variant>/ (default: a temporary folder, removed)")
    p.add_argument("--seed", type=int, default=7, help="seed for phases and texts (default 7)")
    args = p.parse_args(argv)
    print(f"Detection latency: poll interval {args.interval:g} s, {args.runs} runs per variant, waves of up to "
          f"{args.wave} replies, {args.noise} other mentions per interval")
    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=True)
        results = asyncio.run(measure_all(args.variant, args, args.keep))
    else:
        with tempfile.TemporaryDirectory(prefix="bench-latency-") as tmp:
            results = asyncio.run(measure_all(args.variant, args, Path(tmp)))
    path = benchlib.write_result(NAME, args.out, {
        "runs": args.runs, "interval_s": args.interval, "wave": args.wave, "noise_per_interval": args.noise,
        "firehose_per_s": args.firehose, "variants": results,
    })
    print(f"\nwritten: {path}")
    return 0 if all(r["missed"] == 0 and r["early"] == 0 for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
