"""`listener run` as a real subprocess: fake X API, private mosquitto, real SQLite, fake NOTIFY_SOCKET."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sqlite3
import sys
import threading
import time
from pathlib import Path
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from conftest import free_port
from delivery_helpers import Collector
from fakes.x import TOKEN, FakeX

PREFIX = "sl-test"
RULE = """\
rules:
  - id: keyword-alert
    kind: match
    severity: high
    match: {{any: [{word}]}}
    cooldown: 0s
    title: "keyword {{sample_text}}"
"""


class NotifySocket:
    """A datagram socket standing in for systemd's; records every message."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.2)
        self.messages: list[str] = []
        self._stop = False
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        while not self._stop:
            try:
                self.messages.append(self.sock.recv(4096).decode())
            except TimeoutError:
                continue
            except OSError:
                return

    def seen(self, prefix: str) -> bool:
        return any(line.startswith(prefix) for m in self.messages for line in m.splitlines())

    def close(self) -> None:
        self._stop = True
        self.thread.join()
        self.sock.close()


def alerts_of(bus: Collector, rule: str = "keyword-alert") -> list[dict[str, Any]]:
    """The engine's messages for one rule (routed or not), reminders left out."""
    return [p for t, p, _ in bus.messages
            if t.startswith((f"{PREFIX}/alerts/", f"{PREFIX}/routes/")) and p and p["rule"] == rule
            and not p.get("renotify")]


def texts_of(bus: Collector) -> list[str]:
    return [p["samples"][0]["text"] for p in alerts_of(bus) if p["status"] == "firing"]


def subscriber(port: int, name: str) -> Collector:
    return Collector(port, [f"{PREFIX}/#"], identifier=f"bus-{os.getpid()}-{name}")


async def eventually(check: Any, timeout_s: float = 20.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what or check}")


def write_config(tmp: Path, fake: FakeX, broker_port: int, health_port: int, **daemon: Any) -> Path:
    (tmp / "rules").mkdir(exist_ok=True)
    (tmp / "rules" / "keyword.yaml").write_text(RULE.format(word="emergency"))
    extra = "".join(f"  {k}: {v}\n" for k, v in daemon.items())
    config = tmp / "config.yaml"
    config.write_text(f"""\
store: {{path: {tmp / 'listener.db'}}}
broker: {{url: "mqtt://127.0.0.1:{broker_port}", prefix: {PREFIX}, client_id: listener-under-test}}
rules: {{paths: [rules], reload_check_interval: 0}}
sources:
  x: {{base_url: "{fake.base_url}", bearer_token: {{env: LISTENER_X_TOKEN}}}}
watches:
  - {{id: metropd, kind: hashtag, targets: {{x: MetroPD}}, interval: 1s}}
health: {{listen: "127.0.0.1:{health_port}", failing_polls: 2}}
log: {{format: json, level: info}}
daemon:
  tick_interval: 1s
  shutdown_timeout: 5s
  poll_backoff: 1s
{extra}""")
    return config


async def start_daemon(config: Path, notify: Path | None, log: Path) -> asyncio.subprocess.Process:
    env = dict(os.environ, LISTENER_X_TOKEN=TOKEN, WATCHDOG_USEC="2000000")
    env.pop("WATCHDOG_PID", None)
    if notify is not None:
        env["NOTIFY_SOCKET"] = str(notify)
    handle = open(log, "ab")
    return await asyncio.create_subprocess_exec(sys.executable, "-m", "listener", "run", "--config", str(config),
                                                stdout=handle, stderr=handle, env=env)


def log_events(log: Path) -> list[dict[str, Any]]:
    out = []
    for line in log.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            pass
    return out


async def test_daemon_lifecycle(tmp_path, mosquitto):
    fake = FakeX()
    # The fake's clock is the wall clock, so posts are "now" for the daemon's windows.
    await fake.start()
    health_port = free_port()
    config = write_config(tmp_path, fake, mosquitto.port, health_port)
    notify = NotifySocket(tmp_path / "notify.sock")
    log = tmp_path / "daemon.log"
    async with subscriber(mosquitto.port, "lifecycle") as bus, aiohttp.ClientSession() as http:
        proc = await start_daemon(config, notify.path, log)
        try:
            await eventually(lambda: notify.seen("READY=1"), what="READY=1")
            fake.clock.now = time.time()
            fake.new_tweet("There is an emergency on Elm St #MetroPD")
            await eventually(lambda: len(alerts_of(bus)) == 1, what="the first alert")
            (alert,) = alerts_of(bus)
            assert alert["severity"] == "high" and "emergency" in alert["samples"][0]["text"]
            await eventually(lambda: notify.seen("WATCHDOG=1") and notify.seen("STATUS="), what="WATCHDOG/STATUS")
            status = [p for t, p, _ in bus.messages if t == f"{PREFIX}/status"]
            assert status and status[-1]["state"] == "online"

            async with http.get(f"http://127.0.0.1:{health_port}/healthz") as r:
                assert r.status == 200, await r.text()
            async with http.get(f"http://127.0.0.1:{health_port}/metrics") as r:
                families = {f.name: f for f in text_string_to_metric_families(await r.text())}
            fired = [s for s in families["listener_alerts"].samples
                     if s.name == "listener_alerts_total" and s.labels["rule"] == "keyword-alert"]
            assert fired and fired[0].value == 1
            assert "listener_outbox_pending" in families and "listener_poll_duration_seconds" in families

            # SIGHUP with an edited rule file: new behaviour, no restart.
            (tmp_path / "rules" / "keyword.yaml").write_text(RULE.format(word="flood"))
            proc.send_signal(signal.SIGHUP)
            await eventually(lambda: any(e["event"] == "rules reloaded" for e in log_events(log)), what="reload")
            fake.new_tweet("another emergency #MetroPD")
            fake.new_tweet("the river is in flood #MetroPD")
            await eventually(lambda: any("flood" in t for t in texts_of(bus)), what="the flood alert")
            assert not any("another emergency" in t for t in texts_of(bus))

            # SIGHUP with a broken rule file: the old rules keep running, an operator alert says why.
            (tmp_path / "rules" / "keyword.yaml").write_text("rules:\n  - id: keyword-alert\n    kind: match\n"
                                                            "    severty: high\n")
            proc.send_signal(signal.SIGHUP)
            await eventually(lambda: alerts_of(bus, "listener-rules-invalid"), what="the operator alert")
            invalid = alerts_of(bus, "listener-rules-invalid")[0]
            assert "keyword.yaml:4:5" in invalid["summary"]
            fake.new_tweet("flood again #MetroPD")
            await eventually(lambda: any("flood again" in t for t in texts_of(bus)), what="alert after bad reload")
            assert proc.returncode is None

            # A source that keeps failing turns /healthz to 503, and back to 200 when it recovers.
            fake.fail("503", times=10_000)
            async def status_is(code: int) -> bool:
                async with http.get(f"http://127.0.0.1:{health_port}/healthz") as r:
                    return r.status == code
            deadline = time.monotonic() + 30
            while not await status_is(503):
                assert time.monotonic() < deadline, "healthz never turned 503"
                await asyncio.sleep(0.2)
            fake.faults.clear()
            deadline = time.monotonic() + 30
            while not await status_is(200):
                assert time.monotonic() < deadline, "healthz never recovered"
                await asyncio.sleep(0.2)

            # SIGTERM: exit 0 in time, 'offline' published, nothing left in the outbox.
            started = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            code = await asyncio.wait_for(proc.wait(), 10)
            assert code == 0 and time.monotonic() - started < 10
            await eventually(lambda: [p for t, p, _ in bus.messages if t == f"{PREFIX}/status"][-1]["state"]
                             == "offline", what="offline status")
            assert notify.seen("STOPPING=1")
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
            notify.close()
            await fake.close()
    with sqlite3.connect(tmp_path / "listener.db") as db:
        assert db.execute("SELECT count(*) FROM outbox WHERE delivered_at IS NULL").fetchone()[0] == 0
    assert TOKEN not in log.read_text()


async def test_sigkill_then_restart_misses_nothing_and_invents_no_ids(tmp_path, mosquitto):
    fake = FakeX()
    await fake.start()
    config = write_config(tmp_path, fake, mosquitto.port, free_port())
    log = tmp_path / "daemon.log"
    published: list[str] = []

    def post(n: int) -> None:
        fake.clock.now = time.time()
        for _ in range(n):
            text = f"emergency number {len(published)} #MetroPD"
            fake.new_tweet(text)
            published.append(text)

    async with subscriber(mosquitto.port, "restart") as bus:
        proc = await start_daemon(config, None, log)
        try:
            post(5)
            await eventually(lambda: len(texts_of(bus)) >= 5, what="the first alerts")
            post(20)
            await asyncio.sleep(0.3)  # let it be mid-way through something
            proc.kill()
            await proc.wait()
            post(10)  # posted while the daemon is down
            proc = await start_daemon(config, None, log)
            post(5)
            await eventually(lambda: set(texts_of(bus)) >= set(published), timeout_s=30,
                             what="an alert for every post")
        finally:
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
                await proc.wait()
            await fake.close()
    with sqlite3.connect(tmp_path / "listener.db") as db:
        stored = {row[0] for row in db.execute("SELECT text FROM mentions")}
    assert stored == set(published), "a mention was missed or invented"
    by_text: dict[str, set[str]] = {}
    for alert in alerts_of(bus):
        if alert["status"] == "firing" and alert["seq"] == 1:
            by_text.setdefault(alert["samples"][0]["text"], set()).add(alert["id"])
    assert all(len(ids) == 1 for ids in by_text.values()), {t: i for t, i in by_text.items() if len(i) > 1}


async def test_a_restarted_daemon_refreshes_its_bluesky_session_instead_of_logging_in_again(tmp_path, mosquitto):
    from fakes.bluesky import OUR_HANDLE, FakeBluesky

    fake = FakeBluesky()
    await fake.start()
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "keyword.yaml").write_text(RULE.format(word="emergency"))
    config = tmp_path / "config.yaml"
    config.write_text(f"""\
store: {{path: {tmp_path / 'listener.db'}}}
broker: {{url: "mqtt://127.0.0.1:{mosquitto.port}", prefix: {PREFIX}, client_id: listener-bluesky}}
rules: {{paths: [rules], reload_check_interval: 0}}
sources:
  bluesky: {{base_url: "{fake.base_url}", public_url: "{fake.base_url}", identifier: {OUR_HANDLE},
             app_password: {{env: LISTENER_BLUESKY_PASSWORD}}}}
watches:
  - {{id: metropd, kind: hashtag, targets: {{bluesky: MetroPD}}, interval: 1s}}
health: {{listen: "127.0.0.1:{free_port()}"}}
log: {{format: json, level: info}}
daemon: {{tick_interval: 1s, shutdown_timeout: 5s}}
""")
    log = tmp_path / "daemon.log"
    env = dict(os.environ, LISTENER_BLUESKY_PASSWORD=fake.password)
    searches = lambda: len(fake.api_requests("/xrpc/app.bsky.feed.searchPosts"))  # noqa: E731
    try:
        for start in range(2):
            with open(log, "ab") as handle:
                proc = await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "listener", "run", "--config", str(config),
                    stdout=handle, stderr=handle, env=env)
            try:
                polled = searches()
                await eventually(lambda polled=polled: searches() >= polled + 2,  # type: ignore[misc]
                                 what=f"Bluesky searches after start {start + 1}")
            finally:
                proc.send_signal(signal.SIGTERM)
                assert await proc.wait() == 0
    finally:
        await fake.close()
    assert fake.sessions_created == 1, "the second start logged in again"
    assert len(fake.api_requests("/xrpc/com.atproto.server.refreshSession")) == 1
    assert fake.password not in log.read_text()
