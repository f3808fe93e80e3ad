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
import time
from contextlib import suppress
from typing import Any, Awaitable, Callable

import aiohttp

from listener import __version__
from listener.config import LoadedConfig, load_config
from listener.errors import ConfigError
from listener.health import HealthServer
from listener.logs import configure_logging, redact
from listener.metrics import Metrics
from listener.pipeline import Pipeline
from listener.publish.relay import AlertRelay
from listener.rules import Engine, load_rules
from listener.sentiment import SentimentScorer
from listener.sources import build_sources
from listener.sources.base import Batch, Watch
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
        self.store = Store(self.loaded.store_path())
        ruleset = load_rules(self.loaded.rule_paths())
        self.engine = Engine(ruleset.rules)
        self.metrics.rules_loaded.set(len(ruleset.rules))
        self.pipeline = Pipeline(self.store, SentimentScorer(config.sentiment.lexicon), self.engine)
        self.pipeline.resume(time.time())
        self.metrics.track_outbox(self.store.pending_count)
        self.relay = AlertRelay(self.store, broker, renotify_after_s=config.alerts.renotify_after)

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
            self.sources = build_sources(self.config.sources, session)
            self.scheduler = PollScheduler(self.sources, get_cursor=self.store.get_cursor,
                                           on_batch=self._on_batch, on_poll=self._on_poll)
            self.health_server = None
            if self.config.health.listen:
                self.health_server = HealthServer(self.config.health.listen, self.health_report, self.metrics)
                await self.health_server.start()
            try:
                async with asyncio.TaskGroup() as group:
                    self._start(group, "relay", self.relay.run)
                    self._start(group, "ticker", self._tick_loop)
                    self._start(group, "retention", self._retention_loop)
                    self._start(group, "reloader", self._reload_loop)
                    self._start(group, "watchdog", self._watchdog_loop)
                    self.scheduler.start(self.config.watches)
                    jobs = sum(len(w.jobs()) for w in self.config.watches)
                    log.info("listening", extra={"version": __version__, "jobs": jobs,
                                                 "rules": len(self.engine.rules)})
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
            await asyncio.wait_for(self.scheduler.shutdown(), timeout=max(budget / 2, 0.5))
        self.pipeline.tick(time.time())
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

    async def _on_batch(self, watch: Watch, platform: str, batch: Batch) -> None:
        key = Watch.job_key(platform, watch.id)
        started = time.perf_counter()
        cursor = (key, batch.next_cursor) if batch.next_cursor is not None else None
        result = self.pipeline.ingest(batch.mentions, cursor=cursor)
        self.metrics.rule_evaluation.observe(time.perf_counter() - started)
        self.metrics.mentions_ingested.labels(platform=platform).inc(result.received)
        if result.new:
            self.metrics.mentions_scored.labels(platform=platform).inc(len(result.new))
        self._count_alerts(result.alerts)

    def _on_poll(self, key: str, ok: bool, error: str | None) -> None:
        platform, _, watch = key.partition(":")
        if not ok:
            self.metrics.source_errors.labels(platform=platform, watch=watch).inc()
        alerts = self.pipeline.record_poll(key, time.time(), ok, error)
        self._count_alerts(alerts)

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
            mentions, alerts = self.store.prune(now - store.retention_days * 86400,
                                                now - store.alert_retention_days * 86400)
            if mentions or alerts:
                log.info("pruned", extra={"mentions": mentions, "alerts": alerts})
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
        check_s = self.config.rules.reload_check_interval
        signature = _files_signature(self.loaded.rule_paths())
        while True:
            try:
                await asyncio.wait_for(self._reload_requested.wait(), timeout=check_s or None)
                self._reload_requested.clear()
                self.reload()
            except TimeoutError:
                current = _files_signature(self.loaded.rule_paths())
                if current != signature:
                    self.reload_rules()
            signature = _files_signature(self.loaded.rule_paths())

    def reload(self) -> None:
        """SIGHUP: a new config (watches, lexicon, rules); a bad one is rejected and the old kept."""
        try:
            loaded = load_config(self.loaded.path)
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
        self.reload_rules()
        log.info("config reloaded", extra={"watches": len(self.config.watches)})

    def reload_rules(self) -> None:
        try:
            ruleset = load_rules(self.loaded.rule_paths())
        except ConfigError as exc:
            problems = [str(p) for p in exc.problems]
            log.error("rule reload rejected; keeping the last good rules", extra={"problems": problems})
            self.metrics.rule_reload_failures.inc()
            return
        self.engine.replace_rules(ruleset.rules)
        self.metrics.rules_loaded.set(len(ruleset.rules))
        log.info("rules reloaded", extra={"rules": len(ruleset.rules)})

    # -- health --------------------------------------------------------------------

    def health_report(self) -> tuple[bool, dict[str, Any]]:
        reasons: list[str] = [f"{name} failed: {error}" for name, error in self.component_errors.items()]
        if not self.relay.connected:
            reasons.append(f"broker not connected: {self.relay.last_error or 'connecting'}")
        sources: dict[str, Any] = {}
        limit = self.config.health.failing_polls
        for key, h in self.scheduler.health.items():
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


def _files_signature(paths: list[str]) -> tuple[tuple[str, float, int], ...]:
    from pathlib import Path

    from listener.rules.loader import rule_files

    out = []
    for path in rule_files(paths):
        with suppress(OSError):
            st = Path(path).stat()
            out.append((str(path), st.st_mtime, st.st_size))
    return tuple(sorted(out))


def _user_agent() -> str:
    return f"social-listener/{__version__}"


def run(config_path: str, log_format: str | None = None) -> int:
    loaded = load_config(config_path)
    configure_logging(log_format or loaded.config.log.format, loaded.config.log.level)
    return asyncio.run(Daemon(loaded).run())
