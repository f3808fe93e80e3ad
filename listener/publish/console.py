"""What a person runs against the bus: `listener alerts tail` (watch alerts) and `alerts ack` (acknowledge)."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any, Callable

import aiomqtt

from listener.errors import PublishError
from listener.mention import format_time, from_ts
from listener.publish.broker import BrokerSettings
from listener.publish.mqtt import connect, disconnect, make_client
from listener.publish.topics import ack_command_topic, ack_topic
from listener.render import ack_text, alert_text
from listener.rules.model import SEVERITIES

RETRY_S = 2.0


def _decode(message: aiomqtt.Message) -> dict[str, Any] | None:
    raw = message.payload
    if not isinstance(raw, (bytes, bytearray)) or not raw:
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


async def send_ack(settings: BrokerSettings, alert_id: str, *, by: str, note: str | None,
                   wait_s: float, now_ts: float) -> dict[str, Any] | None:
    """Ask the daemon to acknowledge an episode; its answer on `<prefix>/acks`, or None if none came."""
    client = make_client(settings, identifier=f"listener-ack-{uuid.uuid4().hex[:8]}")
    await connect(client, settings)
    try:
        await client.subscribe(ack_topic(settings.prefix), qos=1)
        command = {"id": alert_id, "by": by, "note": note, "sent_at": format_time(from_ts(round(now_ts, 3)))}
        await client.publish(ack_command_topic(settings.prefix), json.dumps(command, ensure_ascii=False), qos=1)

        async def answer() -> dict[str, Any]:
            async for message in client.messages:
                body = _decode(message)
                if body and body.get("id") == alert_id and body.get("requested_by") == by[:100]:
                    return body
            raise PublishError("connection closed")

        try:
            return await asyncio.wait_for(answer(), wait_s)
        except TimeoutError:
            return None
    except aiomqtt.MqttError as exc:
        raise PublishError(f"cannot send the ack to {settings.url}: {exc}") from None
    finally:
        await disconnect(client, settings, say_offline=False)


class Tail:
    """Shows alerts as they arrive; reconnects by itself. Duplicates (same id, seq, renotify) show once."""

    def __init__(self, settings: BrokerSettings, *, min_severity: str = "info", as_json: bool = False,
                 active: bool = False, count: int | None = None, emit: Callable[[str], None],
                 note: Callable[[str], None]) -> None:
        self.settings = settings
        self.min_rank = SEVERITIES.index(min_severity)
        self.as_json = as_json
        self.active = active
        self.count = count
        self.emit = emit
        self.note = note  # connection news, for stderr
        self.shown = 0
        self._seen: set[tuple[str, int, int]] = set()

    def _wanted(self, p: dict[str, Any]) -> bool:
        severity = p.get("severity")
        if severity not in SEVERITIES or SEVERITIES.index(severity) < self.min_rank:
            return False
        key = (str(p.get("id")), int(p.get("seq") or 0), int(p.get("renotify") or 0))
        if key in self._seen:
            return False
        self._seen.add(key)
        return True

    def _show(self, message: aiomqtt.Message) -> None:
        p = _decode(message)
        if p is None:
            return
        prefix = self.settings.prefix
        if message.topic.matches(ack_topic(prefix)):
            if not self.as_json and p.get("status") == "acknowledged":
                self.emit(ack_text(p) + "\n")
            return
        if message.topic.matches(f"{prefix}/active/#") and not message.retain:
            return  # live updates of active/ repeat what the alert topics carry
        if "id" not in p or not self._wanted(p):
            return
        self.emit(json.dumps(p, ensure_ascii=False) if self.as_json else alert_text(p) + "\n")
        self.shown += 1

    def done(self) -> bool:
        return self.count is not None and self.shown >= self.count

    async def run(self) -> None:
        prefix = self.settings.prefix
        topics = [f"{prefix}/alerts/#", f"{prefix}/routes/#", ack_topic(prefix)]
        if self.active:
            topics.append(f"{prefix}/active/#")
        while not self.done():
            client = make_client(self.settings, identifier=f"listener-tail-{uuid.uuid4().hex[:8]}")
            try:
                await connect(client, self.settings)
            except PublishError as exc:
                self.note(f"{exc}; retrying in {RETRY_S:g}s")
                await asyncio.sleep(RETRY_S)
                continue
            try:
                for topic in topics:
                    await client.subscribe(topic, qos=1)
                self.note(f"listening to {self.settings.url} under {prefix}/ (Ctrl-C to stop)")
                async for message in client.messages:
                    self._show(message)
                    if self.done():
                        break
            except aiomqtt.MqttError as exc:
                self.note(f"lost the connection to {self.settings.url} ({exc}); reconnecting")
                await asyncio.sleep(RETRY_S)
            finally:
                await disconnect(client, self.settings, say_offline=False)
