"""Helpers for the delivery tests: rules that fire a lot, a persistent subscriber, retained reads."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiomqtt

from conftest import T0

RULES = """\
rules:
  - id: cry-for-help
    kind: match
    severity: critical
    match: {any: [help]}
    group_by: [author]
    cooldown: 0s
    resolve_after: 1h
    title: "Cry for help from {author}"
  - id: thread-pileup
    kind: threshold
    severity: high
    match: {any: [awful]}
    group_by: [thread]
    window: 10m
    conditions: ["count >= 3"]
    cooldown: 0s
    resolve_after: 5m
    title: "Pile-up on {thread}: {count}"
"""


def write_rules(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "test.yaml").write_text(RULES)
    return directory


def mention_dict(i: int, text: str, *, at_s: float, author: str | None = None,
                 thread: str | None = None) -> dict[str, Any]:
    return {"platform": "bluesky", "id": f"p{i}", "url": f"https://bsky.app/profile/u/post/p{i}",
            "author": author or f"user{i}", "text": text, "thread": thread or f"at://t/{i}",
            "created_at": (T0 + timedelta(seconds=at_s)).isoformat(), "watch": "officer-a",
            "watch_kind": "account"}


def burst_file(path: Path, n: int) -> Path:
    """`n` cries for help from distinct people, and a thread that keeps piling up throughout."""
    lines = []
    for i in range(n):
        lines.append(mention_dict(i, "please help me, I have nowhere to go", at_s=2 * i))
        if i % 10 == 0:
            # A URL-ish group key with '/', '+' and '#': the active topic must stay valid.
            lines.append(mention_dict(100_000 + i, "this is awful, awful, awful", at_s=2 * i + 1, author=f"angry{i}",
                                      thread="at://did:plc:x/app.bsky.feed.post/3k+#y"))
    path.write_text("".join(json.dumps(m) + "\n" for m in lines))
    return path


@dataclass
class Collector:
    """A subscriber with a persistent session that reconnects by itself, as a consumer should."""

    port: int
    topics: list[str]
    identifier: str = "test-collector"
    messages: list[tuple[str, dict[str, Any] | None, bool]] = field(default_factory=list)
    connected: asyncio.Event = field(default_factory=asyncio.Event)
    _task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            try:
                async with aiomqtt.Client("127.0.0.1", self.port, identifier=self.identifier,
                                          clean_session=False, timeout=5) as client:
                    for topic in self.topics:
                        await client.subscribe(topic, qos=1)
                    self.connected.set()
                    async for m in client.messages:
                        raw = bytes(m.payload) if isinstance(m.payload, (bytes, bytearray)) else str(m.payload).encode()
                        self.messages.append((str(m.topic), json.loads(raw) if raw else None, m.retain))
            except aiomqtt.MqttError:
                self.connected.clear()
                await asyncio.sleep(0.2)

    async def __aenter__(self) -> Collector:
        self._task = asyncio.create_task(self._run())
        await asyncio.wait_for(self.connected.wait(), 10)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)

    def alerts(self) -> list[dict[str, Any]]:
        return [p for t, p, _ in self.messages if "/alerts/" in t and p is not None]

    async def wait_for(self, predicate: Any, timeout_s: float = 30.0) -> None:
        deadline = asyncio.get_running_loop().time() + timeout_s
        while not predicate():
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"timed out after {timeout_s}s; have {len(self.messages)} messages")
            await asyncio.sleep(0.05)


async def retained(port: int, topic: str, *, quiet_s: float = 0.5) -> dict[str, Any]:
    """The retained messages under `topic` now, as a fresh client sees them: {topic: payload}."""
    found: dict[str, Any] = {}
    async with aiomqtt.Client("127.0.0.1", port, timeout=5) as client:
        await client.subscribe(topic, qos=1)
        while True:
            try:
                m = await asyncio.wait_for(anext(client.messages), quiet_s)
            except TimeoutError:
                return found
            if m.retain:
                raw = bytes(m.payload) if isinstance(m.payload, (bytes, bytearray)) else str(m.payload).encode()
                found[str(m.topic)] = json.loads(raw) if raw else None
