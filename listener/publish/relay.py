"""AlertRelay: the daemon's delivery of the outbox to MQTT, through broker outages and restarts.

One long-lived task (`run`) connects with a persistent session, publishes the retained status,
re-publishes the retained active alerts, then drains the outbox in order (a row is marked
delivered only after the broker's PUBACK), answers ack commands and re-notifies unacknowledged
high and critical episodes. When the connection fails it backs off with jitter and tries again,
forever; the store keeps every alert meanwhile, so the rest of the daemon never waits for it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import aiomqtt

from listener.errors import PublishError
from listener.mention import format_time, from_ts
from listener.publish.broker import BrokerSettings
from listener.publish.mqtt import (
    PUBLISH_WINDOW, connect, disconnect, make_client, publish_window, status_payload,
)
from listener.publish.topics import ack_command_topic, ack_topic, active_topic, alert_topic, status_topic
from listener.store import OutboxRow, Store

ACK_SCHEMA_VERSION = 1
MAX_ACK_BY = 100
MAX_ACK_NOTE = 500
PRUNE_EVERY_S = 3600.0
RECORD_EVERY_S = 0.01

Message = tuple[str, str | bytes, bool]  # topic, payload, retain


@dataclass
class RelayStats:
    """Counters since the relay was created, for health checks and a /metrics endpoint."""

    delivered: int = 0  # outbox rows acknowledged by the broker
    renotified: int = 0  # re-notifications of unacknowledged episodes
    acks: int = 0  # ack commands that acknowledged an active episode
    ack_rejected: int = 0  # ack commands that were malformed or named no active episode
    publish_errors: int = 0  # publishes that failed (the rows stay queued)
    connects: int = 0  # successful connections
    connect_failures: int = 0  # failed connection attempts


class AlertRelay:
    """Delivers the outbox to the broker for as long as the daemon runs; see the module docstring."""

    def __init__(
        self,
        store: Store,
        settings: BrokerSettings,
        *,
        renotify_after_s: float = 1800.0,
        renotify_severities: tuple[str, ...] = ("critical", "high"),
        logger: logging.Logger | None = None,
        backoff_initial_s: float = 0.5,
        backoff_max_s: float = 60.0,
        timeout_s: float = 10.0,
        batch: int = 200,
        keep_delivered_s: float = 7 * 86400.0,
        observe_latency: Callable[[float], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.settings = settings
        self.renotify_after_s = renotify_after_s
        self.renotify_severities = renotify_severities
        self.log = logger or logging.getLogger("listener.publish")
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.timeout_s = timeout_s
        self.batch = batch
        self.keep_delivered_s = keep_delivered_s
        self.observe_latency = observe_latency  # seconds from enqueue to PUBACK, per delivered row
        self.clock = clock
        self.started_ts = clock()
        self.stats = RelayStats()
        self.connected = False
        self.last_publish_ts: float | None = None
        self.last_error: str | None = None
        self._wake = asyncio.Event()
        self._closing = asyncio.Event()
        self._close_deadline = 0.0
        self._done = asyncio.Event()
        self._running = False
        self._acks: dict[str, dict[str, Any]] = {a.alert_id: a.ack for a in store.active_alerts() if a.ack}
        self._answers: list[tuple[str, dict[str, Any]]] = []  # ack answers and active refreshes to send
        self._last_prune = 0.0
        # Delivery in flight on the current connection (see _send_pending).
        self._sent_upto = 0
        self._slots = asyncio.Semaphore(PUBLISH_WINDOW)
        self._inflight: set[asyncio.Task[None]] = set()
        self._acked: list[OutboxRow] = []
        self._record_scheduled = False
        self._link_failure: asyncio.Future[str] | None = None
        self._renotify_at: float | None = 0.0  # clock() when the next re-notify is due; 0: check now

    # -- the daemon's handles ---------------------------------------------------------

    @property
    def pending(self) -> int:
        """Outbox rows not yet acknowledged by the broker."""
        return self.store.pending_count()

    def wake(self) -> None:
        """New rows are in the outbox: deliver them now rather than at the next timer."""
        self._wake.set()

    async def run(self) -> None:
        """Connect, deliver, reconnect; returns only after `close()`."""
        self._running = True
        attempt = 0
        try:
            while not self._closing.is_set():
                try:
                    client = make_client(self.settings, persistent=True, will=True, timeout_s=self.timeout_s)
                    await connect(client, self.settings)
                except PublishError as exc:
                    attempt += 1
                    self.stats.connect_failures += 1
                    self.last_error = str(exc)
                    delay = self._backoff_s(attempt)
                    self.log.warning("broker: %s; retry %d in %.1fs", exc, attempt, delay)
                    await self._pause(delay)
                    continue
                attempt = 0
                self.connected = True
                self.stats.connects += 1
                self.log.info("broker: connected to %s as %s", self.settings.url, self.settings.client_id)
                try:
                    await self._serve(client)
                except PublishError as exc:
                    self.last_error = str(exc)
                    self.log.warning("broker: %s; reconnecting", exc)
                finally:
                    self.connected = False
                    await disconnect(client, self.settings, say_offline=self._closing.is_set())
        finally:
            self._running = False
            self._done.set()

    async def close(self, drain_timeout_s: float) -> None:
        """Deliver what is queued for up to `drain_timeout_s`, say `offline`, disconnect cleanly."""
        self._close_deadline = asyncio.get_running_loop().time() + drain_timeout_s
        self._closing.set()
        self._wake.set()
        if self._running:
            # The drain stops itself at the deadline; allow a little more for the goodbye.
            await asyncio.wait_for(self._done.wait(), drain_timeout_s + self.timeout_s + 5)

    # -- one connection ---------------------------------------------------------------

    def _backoff_s(self, attempt: int) -> float:
        ceiling = min(self.backoff_max_s, self.backoff_initial_s * 2 ** (attempt - 1))
        return random.uniform(ceiling / 2, ceiling)  # jitter: many daemons do not retry in step

    async def _pause(self, delay_s: float) -> None:
        try:
            await asyncio.wait_for(self._closing.wait(), delay_s)
        except TimeoutError:
            pass

    async def _serve(self, client: aiomqtt.Client) -> None:
        prefix = self.settings.prefix
        await self._send(client, [(status_topic(prefix), status_payload("online", since_ts=self.started_ts), True)])
        try:
            await client.subscribe(ack_command_topic(prefix), qos=1)
        except aiomqtt.MqttError as exc:
            raise PublishError(f"cannot subscribe to {ack_command_topic(prefix)}: {exc}") from None
        # The broker may have lost its retained messages (a new broker, no persistence): say again
        # what is going on before anything else.
        await self._send(client, [(active_topic(prefix, a.payload), self._body(a.payload), True)
                                  for a in self.store.active_alerts()])
        self._link_failure = asyncio.get_running_loop().create_future()
        tasks = {asyncio.create_task(self._read_commands(client), name="relay-commands"),
                 asyncio.create_task(self._deliver(client), name="relay-deliver"),
                 asyncio.create_task(self._watch_link(), name="relay-link"),
                 asyncio.create_task(self._close_deadline_passed(), name="relay-close-deadline")}
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        for task in done:
            if not task.cancelled() and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]

    async def _close_deadline_passed(self) -> None:
        await self._closing.wait()
        await asyncio.sleep(max(0.0, self._close_deadline - asyncio.get_running_loop().time()))
        if self.pending:
            self.log.warning("broker: shutting down with %d alert messages still queued", self.pending)

    async def _send(self, client: aiomqtt.Client, messages: list[Message]) -> None:
        """Publish at QoS 1; any failure means the link is in trouble: PublishError, reconnect."""
        if not messages:
            return
        results = await publish_window(client, messages, timeout_s=self.timeout_s)
        errors = [e for e in results if e is not None]
        if errors:
            self.stats.publish_errors += len(errors)
            raise PublishError(f"publish to {self.settings.url} failed: {errors[0] or 'timeout'}")

    async def _deliver(self, client: aiomqtt.Client) -> None:
        # Per connection: rows after `_sent_upto` have not been handed to this connection yet.
        self._sent_upto = 0
        self._slots = asyncio.Semaphore(PUBLISH_WINDOW)
        try:
            while True:
                self._wake.clear()
                await self._send_pending(client)
                await self._send_answers(client)
                next_due_s = await self._renotify(client)
                self._prune()
                if self._closing.is_set():
                    await asyncio.gather(*self._inflight)
                    self._record()
                    return
                try:
                    await asyncio.wait_for(self._wake.wait(), next_due_s)
                except TimeoutError:
                    pass
        finally:
            for task in self._inflight:
                task.cancel()

    async def _watch_link(self) -> None:
        assert self._link_failure is not None
        error = await self._link_failure
        raise PublishError(f"publish to {self.settings.url} failed: {error}")

    # -- the outbox -------------------------------------------------------------------

    def _body(self, payload: Mapping[str, Any], *, renotify: int = 0) -> str:
        """The message as published: the engine's payload plus delivery fields (ack, renotify)."""
        full = dict(payload)
        full["ack"] = self._acks.get(payload["id"])
        full["renotify"] = renotify
        return json.dumps(full, ensure_ascii=False)

    async def _send_pending(self, client: aiomqtt.Client) -> None:
        """Hand every queued row to the broker, in order, without waiting for earlier PUBACKs.

        The window slides across rows and wakes: a new alert goes out at once even while
        earlier ones await their PUBACK (which the broker's Nagle algorithm may hold ~40 ms).
        Rows are marked delivered as their PUBACKs arrive (`_record`), a batch per loop turn.
        """
        prefix = self.settings.prefix
        while rows := self.store.pending(limit=self.batch, after_seq=self._sent_upto):
            for row in rows:
                p = row.payload
                body = self._body(p)
                messages: list[Message] = [
                    (alert_topic(prefix, p), body, False),
                    # Resolved: an empty retained message clears the active topic.
                    (active_topic(prefix, p), body if p["status"] == "firing" else b"", True),
                ]
                await self._slots.acquire()
                # Tasks start in creation order, so paho puts the messages on the wire in order.
                publishes = [asyncio.create_task(client.publish(t, m, qos=1, retain=r, timeout=self.timeout_s))
                             for t, m, r in messages]
                task = asyncio.create_task(self._settle(row, publishes, self._slots))
                self._inflight.add(task)
                task.add_done_callback(self._inflight.discard)
                self._sent_upto = row.seq

    async def _settle(self, row: OutboxRow, publishes: list[asyncio.Task[None]], slots: asyncio.Semaphore) -> None:
        try:
            results = await asyncio.gather(*publishes, return_exceptions=True)
        except asyncio.CancelledError:
            for publish in publishes:
                publish.cancel()
            raise
        finally:
            slots.release()
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            self.stats.publish_errors += 1
            self.store.mark_failed(row.seq, str(errors[0]) or "timeout")
            if self._link_failure is not None and not self._link_failure.done():
                self._link_failure.set_result(str(errors[0]) or "timeout")
            return
        self._acked.append(row)
        if not self._record_scheduled:
            self._record_scheduled = True
            # Commit in batches: one transaction per PUBACK would cap delivery at a few hundred/s.
            asyncio.get_running_loop().call_later(RECORD_EVERY_S, self._record)

    def _record(self) -> None:
        """Mark the acknowledged rows delivered (one commit) and keep `active_alerts` in step."""
        self._record_scheduled = False
        if not self._acked:
            return
        rows, self._acked = sorted(self._acked, key=lambda r: r.seq), []
        now = self.clock()
        self.store.record_delivery([(r.seq, r.payload) for r in rows], now)
        for r in rows:
            if r.payload["status"] == "resolved":
                self._acks.pop(r.alert_id, None)
            elif r.payload["severity"] in self.renotify_severities and self.renotify_after_s > 0:
                due = now + self.renotify_after_s
                if self._renotify_at is None or due < self._renotify_at:
                    self._renotify_at = due
                    self._wake.set()  # the delivery loop may be waiting with no timer at all
            if self.observe_latency is not None and r.queued_ts is not None:
                self.observe_latency(max(0.0, now - r.queued_ts))
        self.stats.delivered += len(rows)
        self.last_publish_ts = now

    def _prune(self) -> None:
        now = self.clock()
        if now - self._last_prune >= PRUNE_EVERY_S:
            self._last_prune = now
            self.store.prune_delivered(now - self.keep_delivered_s)

    # -- re-notification ----------------------------------------------------------------

    async def _renotify(self, client: aiomqtt.Client) -> float | None:
        """Re-publish unacknowledged high/critical episodes; returns seconds until the next is due."""
        if self.renotify_after_s <= 0:
            return None
        now = self.clock()
        if self._renotify_at is not None and now < self._renotify_at:
            return self._renotify_at - now  # nothing due: skip reading every active episode
        next_due: float | None = None
        prefix = self.settings.prefix
        for a in self.store.active_alerts():
            if a.ack is not None or a.alert_id in self._acks or a.severity not in self.renotify_severities:
                continue
            due_in = a.notified_ts + self.renotify_after_s - now
            if due_in > 0:
                next_due = due_in if next_due is None else min(next_due, due_in)
                continue
            count = a.renotify + 1
            body = self._body(a.payload, renotify=count)
            await self._send(client, [(alert_topic(prefix, a.payload), body, False),
                                      (active_topic(prefix, a.payload), body, True)])
            self.store.set_renotified(a.alert_id, count, now)
            self.stats.renotified += 1
            self.log.info("re-notified %s (%d), not acknowledged", a.alert_id, count)
            next_due = self.renotify_after_s if next_due is None else min(next_due, self.renotify_after_s)
        self._renotify_at = None if next_due is None else now + next_due
        return next_due

    # -- acknowledgements -----------------------------------------------------------------

    async def _read_commands(self, client: aiomqtt.Client) -> None:
        command_topic = ack_command_topic(self.settings.prefix)
        try:
            async for message in client.messages:
                if message.topic.matches(command_topic):
                    self._on_ack(message.payload)
        except aiomqtt.MqttError as exc:
            raise PublishError(f"lost the connection to {self.settings.url}: {exc}") from None

    def _on_ack(self, raw: Any) -> None:
        """Record an ack command; a bad one is logged and answered, never fatal."""
        try:
            command = json.loads(raw)
            if not isinstance(command, dict) or not isinstance(command.get("id"), str) or not command["id"]:
                raise ValueError("an ack command is a JSON object with a string 'id'")
            by = str(command.get("by") or "unknown")[:MAX_ACK_BY]
            note = command.get("note")
            note = None if note is None else str(note)[:MAX_ACK_NOTE]
        except (ValueError, TypeError) as exc:
            self.stats.ack_rejected += 1
            self.log.warning("ignored a malformed ack command: %s", exc)
            return
        alert_id = command["id"]
        at = format_time(from_ts(round(self.clock(), 3)))
        ack = self.store.set_ack(alert_id, by, at, note)
        answer: dict[str, Any] = {"schema_version": ACK_SCHEMA_VERSION, "id": alert_id, "requested_by": by,
                                  "status": "unknown" if ack is None else "acknowledged", "ack": ack}
        if ack is None:
            self.stats.ack_rejected += 1
            self.log.warning("ack for %s by %s ignored: no such active episode", alert_id, by)
        else:
            self.stats.acks += 1
            self._acks[alert_id] = ack
            self.log.info("%s acknowledged by %s", alert_id, ack["by"])
        self._answers.append((alert_id, answer))
        self._wake.set()

    async def _send_answers(self, client: aiomqtt.Client) -> None:
        """Publish ack answers, and the active messages that now carry their ack."""
        if not self._answers:
            return
        answers, self._answers = self._answers, []
        prefix = self.settings.prefix
        active = {a.alert_id: a for a in self.store.active_alerts()}
        messages: list[Message] = []
        for alert_id, answer in answers:
            a = active.get(alert_id)
            if a is not None:
                answer["rule"] = a.rule
                messages.append((active_topic(prefix, a.payload), self._body(a.payload, renotify=a.renotify), True))
            messages.append((ack_topic(prefix), json.dumps(answer, ensure_ascii=False), False))
        try:
            await self._send(client, messages)
        except PublishError:
            self._answers[:0] = answers  # the ack itself is stored; send the answer after reconnecting
            raise
