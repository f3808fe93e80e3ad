"""`listener run`: wires store, sources, scheduler, sentiment, rules, outbox relay and health into one
supervised asyncio daemon.

Every long-running part is a named task in one `asyncio.TaskGroup`. A part that fails is
logged, marked down on /healthz and restarted with backoff; it never dies silently. SIGTERM
or SIGINT: stop polling, finish the batches in hand, drain the outbox for up to
`daemon.shutdown_timeout`, publish `offline`, exit 0. SIGHUP: reload the config and the rules;
a bad new config or rule file is logged and the running one kept.
"""

from __future__ import annotations

import asyncio
import logging
import random
import signal
import sqlite3
import time
from contextlib import suppress
from pathlib import Path
from typing import Any, Awaitable, Callable

import aiohttp

from listener import __version__, native
from listener.config import LoadedConfig, load_config
from listener.errors import ConfigError, ListenerError, StoreError
from listener.health import HealthServer
from listener.logs import configure_logging, redact
from listener.metrics import Metrics
from listener.pipeline import Pipeline
from listener.publish.relay import AlertRelay
from listener.rules import Engine, load_rules
from listener.rules.reload import RuleReloader, RuleWatcher
from listener.sentiment import SentimentScorer
from listener.sources import build_sources
from listener.sources.base import Batch, Source, Watch
from listener.sources.jetstream import JETSTREAM_KEY, JetstreamStream
from listener.sources.scheduler import PollScheduler
from listener.store import Store
from listener.systemd import Notifier, watchdog_interval_s

log = logging.getLogger("listener.daemon")
RESTART_BACKOFF_S = (1.0, 2.0, 5.0, 10.0, 30.0, 60.0)


class Daemon:
    def __init__(self, loaded: LoadedConfig, *, notifier: Notifier | None = None) -> None:
        self.loaded = loaded
        self.config = loaded.config
        self.notifier = notifier or Notifier()
        self.metrics = Metrics()
        self.stopping = asyncio.Event()
        self.started_ts = time.time()
        self.component_errors: dict[str, str] = {}
        self.last_tick_ts = 0.0
        self._reload_requested = asyncio.Event()
        self._tasks: dict[str, asyncio.Task[None]] = {}

    # -- set-up --------------------------------------------------------------------

    def _open(self) -> None:
        config = self.config
        broker = config.broker.settings()
        redact(broker.password)
        ruleset = load_rules(self.loaded.rule_paths())
        self.store = Store(self.loaded.store_path())
        self.engine = Engine(ruleset.rules)
        self.metrics.rules_loaded.set(len(ruleset.rules))
        self.pipeline = Pipeline.resume(self.store, SentimentScorer(config.sentiment.lexicon), self.engine,
                                        now_ts=time.time())
        retention_s = config.store.retention_days * 86400
        self.pipeline.horizon = lambda: time.time() - retention_s
        self.reloader = RuleReloader(self.engine, self.loaded.rule_paths())
        self.metrics.track_outbox(self.store.pending_count)
        self.relay = AlertRelay(self.store, broker, renotify_after_s=config.alerts.renotify_after,
                                renotify_severities=tuple(config.alerts.renotify_severities),
                                keep_delivered_s=config.store.alert_retention_days * 86400,
                                observe_latency=self.metrics.publish_latency.observe)

    # -- the run -------------------------------------------------------------------

    async def run(self) -> int:
        self._open()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop)
        loop.add_signal_handler(signal.SIGHUP, self._reload_requested.set)
        timeout = aiohttp.ClientTimeout(total=30, connect=10)
        async with aiohttp.ClientSession(timeout=timeout, headers={"User-Agent": _user_agent()}) as session:
            self.session = session
            built = build_sources(self.config.sources, session,
                                  needed={p for w in self.config.watches for p, _ in w.jobs()})
            for name, source in built.items():
                keep_session = getattr(source, "keep_session", None)
                if keep_session is not None:  # a source that logs in keeps its session in the store
                    keep_session(self.store.session_keeper(name))
            self.sources = {name: _TimedSource(source, self.metrics) for name, source in built.items()}
            self.scheduler = PollScheduler(
                self.sources, get_cursor=self.store.get_cursor, on_batch=self._on_batch, on_poll=self._on_poll,
                max_concurrent_per_platform=self.config.daemon.polls_per_platform,
                backoff_base_s=self.config.daemon.poll_backoff)
            self.stream: JetstreamStream | None = None
            bluesky = self.config.sources.bluesky
            if bluesky is not None and bluesky.jetstream.enabled:
                self.stream = JetstreamStream(bluesky, session, self.config.watches)
            self.health_server = None
            if self.config.health.listen:
                self.health_server = HealthServer(self.config.health.listen, self.health_report, self.metrics)
                try:
                    await self.health_server.start()
                except OSError as exc:
                    self.store.close()
                    raise ListenerError(f"cannot listen on {self.config.health.listen} (health.listen): "
                                        f"{exc.strerror or exc}") from None
            try:
                async with asyncio.TaskGroup() as group:
                    self._start(group, "relay", self.relay.run)
                    self._start(group, "ticker", self._tick_loop)
                    self._start(group, "retention", self._retention_loop)
                    self._start(group, "reloader", self._reload_loop)
                    self._start(group, "rule-watcher", self._watch_rules)
                    self._start(group, "watchdog", self._watchdog_loop)
                    if self.stream is not None:
                        self._start(group, "jetstream", self._stream)
                    self.scheduler.start(self.config.watches)
                    for key in self.scheduler.unconfigured:
                        log.warning("watch names a platform without a sources: section; not polled",
                                    extra={"job": key})
                    jobs = sum(len(w.jobs()) for w in self.config.watches)
                    log.info("listening", extra={"version": __version__, "jobs": jobs,
                                                 "rules": len(self.engine.rules), "engine": native.status()})
                    self.notifier.ready(self._status_line())
                    await self.stopping.wait()
                    await self._shutdown()
            finally:
                if self.health_server is not None:
                    await self.health_server.stop()
                self.store.close()
        log.info("stopped")
        return 0

    def request_stop(self) -> None:
        if not self.stopping.is_set():
            log.info("stopping: signal received")
            self.notifier.stopping()
            self.stopping.set()

    async def _shutdown(self) -> None:
        budget = self.config.daemon.shutdown_timeout
        deadline = time.monotonic() + budget
        with suppress(Exception):
            await self.scheduler.shutdown(timeout_s=max(budget / 2, 0.5))
        self._count_alerts(self.pipeline.tick(time.time()))
        remaining = max(deadline - time.monotonic(), 0.5)
        with suppress(Exception):
            await self.relay.close(drain_timeout_s=remaining)
        for task in self._tasks.values():
            task.cancel()

    def _start(self, group: asyncio.TaskGroup, name: str, body: Callable[[], Awaitable[None]]) -> None:
        self._tasks[name] = group.create_task(self._supervise(name, body), name=name)

    async def _supervise(self, name: str, body: Callable[[], Awaitable[None]]) -> None:
        """Run a part forever; when it fails, say so (log, /healthz, metrics) and restart it."""
        failures = 0
        while not self.stopping.is_set():
            self.metrics.up.labels(component=name).set(1)
            try:
                await body()
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a part failed; the daemon goes on
                failures += 1
                self.component_errors[name] = f"{type(exc).__name__}: {exc}"
                self.metrics.up.labels(component=name).set(0)
                delay = RESTART_BACKOFF_S[min(failures, len(RESTART_BACKOFF_S)) - 1]
                log.exception("component failed; restarting", extra={"component": name, "retry_in_s": delay})
                await asyncio.sleep(delay * random.uniform(0.8, 1.2))
            else:
                self.component_errors.pop(name, None)

    # -- what the parts do ---------------------------------------------------------

    async def _on_batch(self, watch: Watch | None, key: str, batch: Batch) -> None:
        platform = key.partition(":")[0]
        started = time.perf_counter()
        cursor = (key, batch.next_cursor) if batch.next_cursor is not None else None
        try:
            result = self.pipeline.ingest(batch.mentions, cursor=cursor)
        except sqlite3.Error as exc:  # a full disk, a locked file: nothing was kept, the poll is retried
            self.component_errors["store"] = str(exc)
            raise StoreError(str(exc)) from exc
        self.component_errors.pop("store", None)
        self.metrics.rule_evaluation.observe(time.perf_counter() - started)
        self.metrics.mentions_ingested.labels(platform=platform).inc(result.received)
        if result.new:
            self.metrics.mentions_scored.labels(platform=platform).inc(len(result.new))
        self._count_alerts(result.alerts)

    def _on_poll(self, key: str, ok: bool, error: str | None) -> None:
        platform, _, watch_id = key.partition(":")
        if not ok:
            self.metrics.source_errors.labels(platform=platform, watch=watch_id).inc()
            log.warning("poll failed", extra={"platform": platform, "watch": watch_id, "error": error})
        kind = next((w.kind for w in self.config.watches if w.id == watch_id), None)
        try:
            alerts = self.pipeline.record_poll(watch_id, platform, time.time(), ok, error, kind)
        except sqlite3.Error as exc:  # the store is failing; health says so, the next report is tried anew
            self.component_errors["store"] = str(exc)
            log.error("cannot record a poll in the store", extra={"platform": platform, "watch": watch_id,
                                                                   "error": str(exc)})
            return
        self.component_errors.pop("store", None)
        self._count_alerts(alerts)

    async def _stream(self) -> None:
        assert self.stream is not None

        async def on_batch(batch: Batch) -> None:
            await self._on_batch(None, JETSTREAM_KEY, batch)

        def on_status(ok: bool, error: str | None) -> None:
            self._on_poll(JETSTREAM_KEY, ok, error)

        await self.stream.run(on_batch, lambda: self.store.get_cursor(JETSTREAM_KEY), on_status)

    def _count_alerts(self, alerts: list[Any]) -> None:
        for alert in alerts:
            self.metrics.alerts.labels(rule=alert.rule, severity=alert.severity, status=alert.status).inc()
            log.info("alert", extra={"rule": alert.rule, "alert_id": alert.id, "seq": alert.seq,
                                     "status": alert.status, "severity": alert.severity})
        if alerts:
            self.relay.wake()

    async def _tick_loop(self) -> None:
        interval = self.config.daemon.tick_interval
        while True:
            now = time.time()
            self._count_alerts(self.pipeline.tick(now))
            self.last_tick_ts = now
            self.notifier.status(self._status_line())
            await asyncio.sleep(interval)

    async def _retention_loop(self) -> None:
        store = self.config.store
        while True:
            now = time.time()
            # Delivered alert messages are pruned by the relay (keep_delivered_s).
            mentions = self.store.prune(now - store.retention_days * 86400)
            if mentions:
                log.info("pruned old mentions", extra={"mentions": mentions})
            await asyncio.sleep(store.prune_interval)

    async def _watchdog_loop(self) -> None:
        interval = watchdog_interval_s()
        if interval is None:
            return
        while True:
            # Ping only while the pipeline moves: a stuck ticker means a stuck daemon.
            if time.time() - self.last_tick_ts < max(3 * self.config.daemon.tick_interval, interval * 2):
                self.notifier.watchdog()
            await asyncio.sleep(interval)

    async def _reload_loop(self) -> None:
        """SIGHUP: reload the config and the rules."""
        while True:
            await self._reload_requested.wait()
            self._reload_requested.clear()
            self.reload()

    async def _watch_rules(self) -> None:
        """Rule files edited in place are reloaded once the edit has settled."""
        interval = self.config.rules.reload_check_interval
        if interval <= 0:
            return
        await RuleWatcher(self.loaded.rule_paths(), self.reload_rules, interval_s=interval).run()

    def reload(self) -> None:
        """SIGHUP: a new config (watches, lexicon, rules); a bad one is rejected and the old kept."""
        try:
            loaded = load_config(self.loaded.path)
            if problems := loaded.secret_problems():
                raise ConfigError(problems)
        except ConfigError as exc:
            log.error("config reload rejected; keeping the running config",
                      extra={"problems": [str(p) for p in exc.problems]})
            self.metrics.rule_reload_failures.inc()
            return
        if loaded.config.broker != self.config.broker or loaded.config.store != self.config.store:
            log.warning("broker or store settings changed: restart the daemon to apply them")
        self.loaded, self.config = loaded, loaded.config
        self.pipeline.scorer = SentimentScorer(self.config.sentiment.lexicon)
        self.scheduler.update(self.config.watches)
        if self.stream is not None:
            self.stream.update(self.config.watches)
        self.reloader.paths = [Path(p) for p in self.loaded.rule_paths()]
        self.reload_rules()
        log.info("config reloaded", extra={"watches": len(self.config.watches)})

    def reload_rules(self) -> None:
        """Swap in the rule files as they are now; a bad file keeps the last good rules running."""
        result = self.reloader.reload(time.time())
        self._count_alerts(self.pipeline.queue(result.alerts))
        if not result.ok:
            log.error("rule reload rejected; keeping the last good rules",
                      extra={"problems": [str(p) for p in result.problems]})
            self.metrics.rule_reload_failures.inc()
            return
        self.metrics.rules_loaded.set(len(self.engine.rules))
        log.info("rules reloaded", extra={"rules": len(self.engine.rules), "added": result.added,
                                          "changed": result.changed, "removed": result.removed})

    # -- health --------------------------------------------------------------------

    def health_report(self) -> tuple[bool, dict[str, Any]]:
        reasons: list[str] = [f"{name} failed: {error}" for name, error in self.component_errors.items()]
        if not self.relay.connected:
            reasons.append(f"broker not connected: {self.relay.last_error or 'connecting'}")
        sources: dict[str, Any] = {}
        limit = self.config.health.failing_polls
        healths = dict(self.scheduler.health)
        if self.stream is not None:
            healths[JETSTREAM_KEY] = self.stream.health
        for key, h in healths.items():
            failing = h.consecutive_failures >= limit
            sources[key] = {"status": "failing" if failing else "ok", "last_success": h.last_success_ts,
                            "last_error": h.last_error, "consecutive_failures": h.consecutive_failures}
            if failing:
                reasons.append(f"source {key} failed {h.consecutive_failures} polls in a row: {h.last_error}")
        return not reasons, {"reasons": reasons, "sources": sources, "outbox_pending": self.store.pending_count(),
                             "version": __version__, "uptime_s": round(time.time() - self.started_ts)}

    def _status_line(self) -> str:
        return (f"{self.store.mention_count()} mentions, {len(self.engine.rules)} rules, "
                f"{self.store.pending_count()} alerts pending")


class _TimedSource:
    """A source whose fetches are timed for /metrics (listener_poll_duration_seconds)."""

    def __init__(self, source: Source, metrics: Metrics) -> None:
        self.source = source
        self.platform = source.platform
        self._histogram = metrics.poll_duration.labels(platform=source.platform)

    async def fetch(self, watch: Watch, target: str, cursor: str | None) -> Batch:
        started = time.perf_counter()
        try:
            return await self.source.fetch(watch, target, cursor)
        finally:
            self._histogram.observe(time.perf_counter() - started)


def _user_agent() -> str:
    return f"social-listener/{__version__}"


def run(config_path: str, log_format: str | None = None) -> int:
    loaded = load_config(config_path)
    problems = loaded.secret_problems()
    if problems:  # fail now, not with an empty token at the platform an hour later
        raise ConfigError(problems)
    configure_logging(log_format or loaded.config.log.format, loaded.config.log.level)
    return asyncio.run(Daemon(loaded).run())
