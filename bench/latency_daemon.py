"""The daemon variants of bench_latency.py: `listener run` as a subprocess, polling or streaming the test suite's fakes.

The fake platform servers (tests/fakes/) run in the benchmark's own event loop, so the moment
a post becomes visible is known exactly; the daemon is a separate process started from a
config file that points at them and at the private broker, as an operator would run it.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import random
import signal
import sqlite3
import sys
import time
from contextlib import suppress
from pathlib import Path
from typing import Any, Callable, Iterator

import benchlib
from streams import StreamSpec, mentions as stream_mentions

if str(benchlib.ROOT / "tests") not in sys.path:
    sys.path.insert(0, str(benchlib.ROOT / "tests"))  # the fakes import each other as `fakes.*`

from fakes.bluesky import OUR_DID, OUR_HANDLE, FakeBluesky  # noqa: E402
from fakes.jetstream import FakeJetstream  # noqa: E402
from fakes.x import OUR_ID, TOKEN, FakeX  # noqa: E402

from listener.mention import format_time, from_ts, parse_time  # noqa: E402

OUR_X_HANDLE = "MetroPolice"  # the account FakeX knows
CID = "bafyreib2rxk3rh6kzwq4d5p6xqv2w7m3c4"
RSS_EVERY_S = 0.5


class DaemonProcess:
    """`listener run` in a folder of its own: config, log, store; its log and outbox read back, its RSS sampled."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self.config = folder / "config.yaml"
        self.log = folder / "daemon.log"
        self.db = folder / "listener.db"
        self.proc: asyncio.subprocess.Process | None = None
        self.rss_mb: list[float] = []
        self.hwm_mb = 0.0
        self._sampler: asyncio.Task[None] | None = None
        # Outbox times are wall-clock epoch seconds; everything else here is on the monotonic clock.
        self._wall_minus_mono = time.time() - time.monotonic()

    def write_config(self, broker_url: str, prefix: str, name: str, sources: str, watch: str) -> None:
        self.config.write_text(f"""\
store: {{path: {self.db}}}
broker: {{url: "{broker_url}", prefix: {prefix}, client_id: bench-latency-{name}-{os.getpid()}}}
rules: {{paths: ["{benchlib.SHIPPED_RULES}"], reload_check_interval: 0}}
sources:
{sources}
watches:
  - {watch}
health: {{listen: null}}
log: {{format: json, level: info}}
daemon: {{shutdown_timeout: 5s}}
""", encoding="utf-8")

    async def start(self, env: dict[str, str]) -> None:
        full = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")}
        with open(self.log, "ab") as log:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "listener", "run", "--config", str(self.config),
                stdout=log, stderr=log, env=full | env)

    async def wait_until(self, condition: Callable[[], object], what: str, timeout_s: float = 60.0) -> None:
        """Wait for `condition()`; fail with the daemon's log tail if it exits or takes too long."""
        deadline = time.monotonic() + timeout_s
        while not condition():
            assert self.proc is not None
            if self.proc.returncode is not None or time.monotonic() > deadline:
                tail = "\n".join(self.log.read_text(encoding="utf-8", errors="replace").splitlines()[-20:])
                why = f"exited with {self.proc.returncode}" if self.proc.returncode is not None else "timed out"
                raise SystemExit(f"listener run {why} waiting for {what}; its log ends:\n{tail}")
            await asyncio.sleep(0.05)

    def events(self) -> Iterator[dict[str, Any]]:
        for line in self.log.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict):
                yield event

    def logged(self, prefix: str) -> bool:
        return any(str(e.get("event", "")).startswith(prefix) for e in self.events())

    def start_sampling(self) -> None:
        self._sampler = asyncio.create_task(self._sample())

    async def _sample(self) -> None:
        assert self.proc is not None
        status = Path(f"/proc/{self.proc.pid}/status")
        while True:
            try:
                fields = dict(line.split(":", 1) for line in status.read_text().splitlines() if ":" in line)
            except OSError:
                return  # gone, or no /proc here
            self.rss_mb.append(int(fields["VmRSS"].split()[0]) / 1024)
            self.hwm_mb = int(fields["VmHWM"].split()[0]) / 1024
            await asyncio.sleep(RSS_EVERY_S)

    def report(self) -> dict[str, Any]:
        """The daemon's exit code after SIGTERM and its memory (VmRSS samples, VmHWM) during the runs."""
        out: dict[str, Any] = {"exit_code": self.proc.returncode if self.proc is not None else None}
        if not self.rss_mb:
            return out
        rss = self.rss_mb
        return out | {"rss_mb": {"first": round(rss[0], 1), "last": round(rss[-1], 1), "max": round(max(rss), 1),
                           "hwm": round(self.hwm_mb, 1), "samples": len(rss), "every_s": RSS_EVERY_S}}

    def raised(self, rule: str) -> dict[str, float]:
        """When the daemon queued each thread's first firing alert of `rule`, on the monotonic clock."""
        if not self.db.exists():
            return {}
        with sqlite3.connect(self.db, timeout=5) as db:
            rows = db.execute("SELECT payload, queued_ts FROM outbox WHERE rule = ? AND status = 'firing' "
                              "ORDER BY seq", [rule]).fetchall()
        out: dict[str, float] = {}
        for payload, queued_ts in rows:
            thread = json.loads(payload).get("group", {}).get("values", {}).get("thread")
            if thread and queued_ts is not None:
                out.setdefault(thread, queued_ts - self._wall_minus_mono)
        return out

    async def stop(self) -> None:
        if self._sampler is not None:
            self._sampler.cancel()
        if self.proc is None or self.proc.returncode is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.proc.wait(), 20)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()


class _DaemonVariant:
    """What both daemon variants share: the daemon, a noise task, milestones and the report."""

    name = ""
    description = ""
    platform = ""
    rule = "backlash-on-post"

    def __init__(self, folder: Path, interval_s: float, goal_s: float, noise_per_s: float, seed: int) -> None:
        self.interval_s = interval_s
        self.goal_s = goal_s
        self.noise_per_s = noise_per_s
        self.daemon = DaemonProcess(folder)
        self.noise = stream_mentions(StreamSpec(n=10**9, seed=seed))
        self._noise_task: asyncio.Task[None] | None = None
        self._raised: dict[str, float] = {}

    def add_noise(self, n: int) -> None:
        raise NotImplementedError

    def polled(self, released_t: float) -> float | None:
        return None

    def milestones(self, root: str, released_t: float) -> tuple[float | None, float | None]:
        if root not in self._raised:
            self._raised = self.daemon.raised(self.rule)
        return self.polled(released_t), self._raised.get(root)

    def report(self) -> dict[str, Any]:
        return self.daemon.report()

    def start_noise(self) -> None:
        self._noise_task = asyncio.create_task(self._noise_loop())

    async def _noise_loop(self) -> None:
        """Other traffic at a steady rate, posted every 100 ms, stamped with the current time."""
        step_s, owed = 0.1, 0.0
        while True:
            await asyncio.sleep(step_s)
            owed += self.noise_per_s * step_s
            if owed >= 1:
                self.add_noise(int(owed))
                owed -= int(owed)

    async def stop_noise(self) -> None:
        if self._noise_task is not None:
            self._noise_task.cancel()
            with suppress(asyncio.CancelledError):
                await self._noise_task


class DaemonPoll(_DaemonVariant):
    """`listener run` polling a fake X API for mentions of our account every `interval_s`."""

    name = "daemon"
    platform = "x"

    def __init__(self, folder: Path, interval_s: float, *, noise_per_s: float, seed: int) -> None:
        super().__init__(folder, interval_s, interval_s + 1.0, noise_per_s, seed)
        self.phase_s = interval_s
        self.description = (f"listener run (subprocess) polling a fake X API every {interval_s:g} s for mentions "
                            f"of @{OUR_X_HANDLE}: scheduler -> HTTP -> pipeline -> outbox relay (QoS 1)")
        self.fake = FakeX()
        self.path = f"/2/users/{OUR_ID}/mentions"

    def root(self, run: int, seed: int) -> str:
        return f"1870000000{seed:04d}{run:05d}"

    async def start(self, broker_url: str, prefix: str) -> None:
        await self.fake.start()
        self.daemon.write_config(
            broker_url, prefix, self.name,
            sources=f'  x: {{base_url: "{self.fake.base_url}", bearer_token: {{env: LISTENER_X_TOKEN}}}}',
            watch=(f"{{id: metro-police, kind: account, targets: {{x: {OUR_X_HANDLE}}}, "
                   f"interval: {self.interval_s:g}s}}"))
        await self.daemon.start({"LISTENER_X_TOKEN": TOKEN})
        # Ready: the relay is connected and the first poll has reached the fake (start-up spreads it).
        await self.daemon.wait_until(lambda: self.daemon.logged("broker: connected"), "the broker connection")
        await self.daemon.wait_until(lambda: self.poll_starts(), "the first poll")
        self.daemon.start_sampling()
        self.start_noise()

    def release(self, mentions: list[dict[str, Any]]) -> None:
        for m in mentions:
            thread = m.get("thread")
            self.fake.new_tweet(m["text"], created_ts=parse_time(m["created_at"]).timestamp(), mentions_us=True,
                                conversation_id=int(thread) if thread else None)

    def add_noise(self, n: int) -> None:
        now = time.time()
        for _ in range(n):
            self.fake.new_tweet(f"@{OUR_X_HANDLE} {next(self.noise)['text']}", created_ts=now, mentions_us=True)

    def poll_starts(self) -> list[float]:
        """When each poll's first request reached the fake (follow-up pages carry a pagination token)."""
        return [r.at for r in self.fake.api_requests(self.path) if "pagination_token" not in r.query]

    def polled(self, released_t: float) -> float | None:
        return next((t for t in self.poll_starts() if t >= released_t), None)

    def report(self) -> dict[str, Any]:
        times = self.poll_starts()
        gaps = [b - a for a, b in itertools.pairwise(times)]
        out = super().report()
        if gaps:
            out["poll_gap_s"] = {"p50": round(benchlib.percentile(gaps, 50), 3), "min": round(min(gaps), 3),
                                 "max": round(max(gaps), 3), "polls": len(times)}
        return out

    async def stop(self) -> None:
        await self.stop_noise()
        await self.daemon.stop()
        await self.fake.close()


class DaemonJetstream(_DaemonVariant):
    """`listener run` with Bluesky Jetstream on: a fake Jetstream pushes replies to our account amid a firehose."""

    name = "jetstream"
    platform = "bluesky"

    def __init__(self, folder: Path, interval_s: float, *, firehose_per_s: float, goal_s: float, phase_s: float,
                 seed: int, flush_s: float | None = None) -> None:
        super().__init__(folder, interval_s, goal_s, firehose_per_s, seed)
        self.phase_s = phase_s
        self.flush_s = flush_s  # None: the daemon's default
        self.description = (f"listener run (subprocess) with Bluesky Jetstream: a fake Jetstream WebSocket carrying "
                            f"{firehose_per_s:g} other posts/s plus the replies to our account; Bluesky search "
                            f"polled every {interval_s:g} s too (it finds nothing)")
        self.bluesky = FakeBluesky()
        self.stream = FakeJetstream()
        self.rng = random.Random(seed)

    def root(self, run: int, seed: int) -> str:
        return f"at://{OUR_DID}/app.bsky.feed.post/3lbench{seed:04d}{run:05d}"

    async def start(self, broker_url: str, prefix: str) -> None:
        await self.bluesky.start()
        await self.stream.start()
        flush = "" if self.flush_s is None else f", flush_s: {self.flush_s:g}"
        sources = (f'  bluesky:\n    base_url: "{self.bluesky.base_url}"\n    public_url: "{self.bluesky.base_url}"\n'
                   f"    identifier: {OUR_HANDLE}\n    app_password: {{env: LISTENER_BLUESKY_PASSWORD}}\n"
                   f'    jetstream: {{enabled: true, url: "{self.stream.base_url.replace("http", "ws", 1)}"{flush}}}')
        self.daemon.write_config(
            broker_url, prefix, self.name, sources=sources,
            watch=f"{{id: metro-police, kind: account, targets: {{bluesky: {OUR_HANDLE}}}, "
                  f"interval: {self.interval_s:g}s}}")
        await self.daemon.start({"LISTENER_BLUESKY_PASSWORD": self.bluesky.password})
        await self.daemon.wait_until(lambda: self.daemon.logged("broker: connected"), "the broker connection")
        await self.daemon.wait_until(lambda: bool(self.stream.sockets), "the Jetstream connection")
        self.daemon.start_sampling()
        self.start_noise()

    @staticmethod
    def _now_us() -> int:
        return int(time.time() * 1_000_000)

    def release(self, mentions: list[dict[str, Any]]) -> None:
        for m in mentions:
            ref = {"uri": m["thread"], "cid": CID}
            self.stream.post(f"did:plc:{m['author'].lower()}", m["text"], time_us=self._now_us(),
                             createdAt=m["created_at"], reply={"root": ref, "parent": ref})

    def add_noise(self, n: int) -> None:
        now = format_time(from_ts(time.time()))
        for _ in range(n):
            did = f"did:plc:firehose{self.rng.randrange(10**9):09d}"
            self.stream.post(did, next(self.noise)["text"], time_us=self._now_us(), createdAt=now)

    async def stop(self) -> None:
        await self.stop_noise()
        await self.daemon.stop()
        await self.stream.drop()
        await self.stream.close()
        await self.bluesky.close()
