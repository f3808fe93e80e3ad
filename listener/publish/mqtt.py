"""The MQTT publisher: QoS 1 alert messages, the retained daemon status, and the outbox drain.

aiomqtt and paho exceptions stop here: callers see PublishError.
"""

from __future__ import annotations

import json
import socket
import ssl
import time
from types import TracebackType
from typing import Any, Mapping

import aiomqtt

from listener import __version__
from listener.errors import PublishError
from listener.mention import format_time, from_ts
from listener.publish.broker import BrokerSettings
from listener.publish.topics import alert_topic, status_topic
from listener.store import Store


def _tls_context(settings: BrokerSettings) -> ssl.SSLContext | None:
    if not settings.tls:
        return None
    context = ssl.create_default_context(cafile=settings.ca_file)
    if settings.cert_file:
        context.load_cert_chain(settings.cert_file, settings.key_file)
    return context


class MqttPublisher:
    """One connection to the broker; use as `async with MqttPublisher(settings) as pub:`."""

    def __init__(self, settings: BrokerSettings, *, timeout_s: float = 10.0) -> None:
        self.settings = settings
        self.timeout_s = timeout_s
        self._client: aiomqtt.Client | None = None

    async def __aenter__(self) -> MqttPublisher:
        s = self.settings
        offline = json.dumps({"state": "offline", "version": __version__})
        try:
            client = aiomqtt.Client(
                s.host, s.port, username=s.username, password=s.password, identifier=s.client_id,
                will=aiomqtt.Will(status_topic(s.prefix), offline, qos=1, retain=True),
                tls_context=_tls_context(s), timeout=self.timeout_s, keepalive=30,
            )
            await client.__aenter__()
        except (aiomqtt.MqttError, OSError, ssl.SSLError) as exc:
            raise PublishError(f"cannot connect to {s.url}: {exc}") from None
        self._client = client
        online = {"state": "online", "version": __version__, "since": format_time(from_ts(time.time())),
                  "host": socket.gethostname()}
        await self._publish(status_topic(s.prefix), json.dumps(online), retain=True)
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        try:
            # A clean DISCONNECT discards the will, so say "offline" ourselves.
            offline = json.dumps({"state": "offline", "version": __version__})
            await client.publish(status_topic(self.settings.prefix), offline, qos=1, retain=True)
        except aiomqtt.MqttError:
            pass
        try:
            await client.__aexit__(exc_type, exc, tb)
        except aiomqtt.MqttError:
            pass

    async def _publish(self, topic: str, payload: str | bytes, *, retain: bool = False) -> None:
        if self._client is None:
            raise PublishError("not connected")
        try:
            await self._client.publish(topic, payload, qos=1, retain=retain, timeout=self.timeout_s)
        except aiomqtt.MqttError as exc:
            raise PublishError(f"publish to {topic} failed: {exc}") from None

    async def publish_alert(self, payload: Mapping[str, Any]) -> str:
        """Publish one alert at QoS 1; returns after the broker's PUBACK. Returns the topic."""
        topic = alert_topic(self.settings.prefix, payload)
        await self._publish(topic, json.dumps(payload, ensure_ascii=False))
        return topic


async def drain_outbox(store: Store, publisher: MqttPublisher, *, batch: int = 100) -> int:
    """Publish every undelivered outbox row in order; a row is marked delivered only after PUBACK."""
    delivered = 0
    while rows := store.pending(limit=batch):
        done: list[int] = []
        try:
            for row in rows:
                await publisher.publish_alert(row.payload)
                done.append(row.seq)
        except PublishError as exc:
            store.mark_delivered(done)
            if len(done) < len(rows):
                store.mark_failed(rows[len(done)].seq, str(exc))
            raise
        store.mark_delivered(done)
        delivered += len(done)
    return delivered
