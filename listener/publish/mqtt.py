"""MQTT connections for social-listener: the client setup, clear connect errors, one-shot publishing.

aiomqtt and paho exceptions stop here (and in relay.py): callers see PublishError.
"""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
import time
from types import TracebackType
from typing import Any, Iterable, Mapping, Sequence

import aiomqtt
from aiomqtt.exceptions import MqttConnectError

from listener import __version__
from listener.errors import PublishError
from listener.mention import format_time, from_ts
from listener.publish.broker import BrokerSettings
from listener.publish.topics import alert_topic, status_topic
from listener.store import Store

# aiomqtt 2.x slows down with many concurrent publishes (a linear scan per call) and warns past
# 10 pending calls; a small window keeps paho's pipeline full without either.
PUBLISH_WINDOW = 20
KEEPALIVE_S = 30


def tls_context(settings: BrokerSettings) -> ssl.SSLContext | None:
    """The TLS context for an mqtts:// broker: its CA file (else the system's) and a client certificate."""
    if not settings.tls:
        return None
    try:
        context = ssl.create_default_context(cafile=settings.ca_file)
        if settings.cert_file:
            context.load_cert_chain(settings.cert_file, settings.key_file)
    except (OSError, ssl.SSLError) as exc:
        raise PublishError(f"cannot load the TLS files for {settings.url}: {exc}") from None
    return context


def status_payload(state: str, *, since_ts: float | None = None) -> str:
    """The retained daemon status: `online` with version, start time and host, or `offline`."""
    body: dict[str, Any] = {"state": state, "version": __version__}
    if state == "online":
        body["since"] = format_time(from_ts(since_ts if since_ts is not None else time.time()))
        body["host"] = socket.gethostname()
    return json.dumps(body)


def make_client(settings: BrokerSettings, *, identifier: str | None = None, persistent: bool = False,
                will: bool = False, timeout_s: float = 10.0) -> aiomqtt.Client:
    """An unconnected client. `persistent` keeps the session (subscriptions, queued QoS 1) across
    disconnects under a stable client id; `will` has the broker set `<prefix>/status` offline
    when the connection dies without a clean DISCONNECT."""
    client = aiomqtt.Client(
        settings.host, settings.port, username=settings.username, password=settings.password,
        identifier=identifier or settings.client_id, clean_session=not persistent,
        will=aiomqtt.Will(status_topic(settings.prefix), status_payload("offline"), qos=1, retain=True)
        if will else None,
        tls_context=tls_context(settings), timeout=timeout_s, keepalive=KEEPALIVE_S,
        # Without it, Nagle's algorithm and the broker's delayed ACK stall each window of
        # small publishes for ~40 ms: 300 alerts/s instead of thousands.
        socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
    )
    client.pending_calls_threshold = 2 * PUBLISH_WINDOW + 10
    return client


def describe_error(settings: BrokerSettings, exc: BaseException) -> str:
    """A broker error in words an operator can act on; never contains the password."""
    text = str(exc) or type(exc).__name__
    if isinstance(exc, MqttConnectError):
        rc = getattr(exc.rc, "value", exc.rc)
        if rc in (4, 5, 134, 135):
            return (f"{settings.url} refused the login of user {settings.username!r} ({text}): "
                    "check the username and password")
        return f"{settings.url} refused the connection ({text})"
    if "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text:
        return (f"cannot verify the TLS certificate of {settings.url} ({text}): "
                "check ca_file and that the URL's host matches the certificate")
    if "SSL" in text or "TLS" in text:
        return f"TLS handshake with {settings.url} failed ({text})"
    if "Connection refused" in text or "Errno 111" in text:
        return f"cannot connect to {settings.url}: connection refused (is the broker running?)"
    if "timed out" in text:
        return f"no answer from {settings.url} ({text})"
    return f"cannot connect to {settings.url}: {text}"


async def connect(client: aiomqtt.Client, settings: BrokerSettings) -> None:
    try:
        await client.__aenter__()
    except (aiomqtt.MqttError, OSError, ssl.SSLError) as exc:
        raise PublishError(describe_error(settings, exc)) from None


async def disconnect(client: aiomqtt.Client, settings: BrokerSettings, *, say_offline: bool) -> None:
    """Leave cleanly; a clean DISCONNECT discards the will, so say `offline` ourselves first."""
    try:
        if say_offline:
            await client.publish(status_topic(settings.prefix), status_payload("offline"), qos=1, retain=True,
                                 timeout=5)
        await client.__aexit__(None, None, None)
    except (aiomqtt.MqttError, OSError):
        pass


async def publish_window(client: aiomqtt.Client, messages: Iterable[tuple[str, str | bytes, bool]],
                         *, timeout_s: float) -> list[BaseException | None]:
    """Publish (topic, payload, retain) messages at QoS 1, in order on the wire, with up to
    PUBLISH_WINDOW awaiting their PUBACK. Returns one entry per message: None (acknowledged) or
    the error.

    The window slides (a new publish starts as soon as one is acknowledged) rather than going
    in rounds: waiting for a whole round lets the broker's Nagle algorithm hold its PUBACKs
    until our delayed ACK fires, a ~40 ms stall per round.
    """
    slots = asyncio.Semaphore(PUBLISH_WINDOW)

    async def one(topic: str, payload: str | bytes, retain: bool) -> BaseException | None:
        try:
            await client.publish(topic, payload, qos=1, retain=retain, timeout=timeout_s)
            return None
        except aiomqtt.MqttError as exc:
            return exc
        finally:
            slots.release()

    tasks: list[asyncio.Task[BaseException | None]] = []
    try:
        for topic, payload, retain in messages:
            await slots.acquire()
            # Tasks start in creation order, so paho queues the messages in this order.
            tasks.append(asyncio.create_task(one(topic, payload, retain)))
        return list(await asyncio.gather(*tasks))
    except asyncio.CancelledError:
        for task in tasks:
            task.cancel()
        raise


class MqttPublisher:
    """One connection for a one-shot job (replay, demo): `async with MqttPublisher(settings) as pub:`."""

    def __init__(self, settings: BrokerSettings, *, timeout_s: float = 10.0) -> None:
        self.settings = settings
        self.timeout_s = timeout_s
        self._client: aiomqtt.Client | None = None

    async def __aenter__(self) -> MqttPublisher:
        client = make_client(self.settings, timeout_s=self.timeout_s)
        await connect(client, self.settings)
        self._client = client
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        client, self._client = self._client, None
        if client is not None:
            await disconnect(client, self.settings, say_offline=False)

    async def publish_alerts(self, payloads: Sequence[Mapping[str, Any]]) -> list[BaseException | None]:
        """Publish alert payloads at QoS 1 in order; one result per payload (None = PUBACK received)."""
        if self._client is None:
            raise PublishError("not connected")
        messages = [(alert_topic(self.settings.prefix, p), json.dumps(p, ensure_ascii=False), False)
                    for p in payloads]
        return await publish_window(self._client, messages, timeout_s=self.timeout_s)

    async def publish_alert(self, payload: Mapping[str, Any]) -> str:
        """Publish one alert at QoS 1; returns the topic after the broker's PUBACK."""
        (error,) = await self.publish_alerts([payload])
        if error is not None:
            raise PublishError(f"publish failed: {error}")
        return alert_topic(self.settings.prefix, payload)


async def drain_outbox(store: Store, publisher: MqttPublisher, *, batch: int = 200) -> int:
    """Publish every undelivered outbox row in order; a row is marked delivered only after PUBACK.

    One-shot (replay, demo): the first failure stops the drain with PublishError, and what was
    not acknowledged stays queued. The daemon uses AlertRelay, which also keeps `active/` topics.
    """
    delivered = 0
    while rows := store.pending(limit=batch):
        results = await publisher.publish_alerts([row.payload for row in rows])
        done = [row.seq for row, error in zip(rows, results) if error is None]
        failed = [row.seq for row, error in zip(rows, results) if error is not None]
        store.mark_delivered(done)
        delivered += len(done)
        if failed:
            error = next(e for e in results if e is not None)
            store.mark_failed_many(failed, str(error))
            raise PublishError(f"publish to {publisher.settings.url} failed: {error}")
    return delivered
