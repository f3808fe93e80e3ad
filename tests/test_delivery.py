"""Alerts that always arrive: the relay against a real mosquitto that stops, restarts and is killed."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from pathlib import Path

import jsonschema

from listener.backtest import run_backtest
from listener.paths import ALERT_SCHEMA
from listener.pipeline import Pipeline
from listener.publish import AlertRelay, parse_broker_url
from listener.publish.topics import group_slug
from listener.replay import ReplayReader
from listener.rules import Engine, load_rules
from listener.sentiment import SentimentScorer
from listener.store import Store

from conftest import ROOT
from delivery_helpers import Collector, burst_file, retained, write_rules

VALIDATOR = jsonschema.Draft202012Validator(json.loads(ALERT_SCHEMA.read_text()),
                                            format_checker=jsonschema.FormatChecker())
PREFIX = "social-listener"


def relay_for(store: Store, url: str, **kwargs: object) -> AlertRelay:
    options: dict[str, object] = {"backoff_initial_s": 0.1, "backoff_max_s": 1.0, "renotify_after_s": 0}
    options.update(kwargs)
    return AlertRelay(store, parse_broker_url(url, client_id="test-daemon"), **options)  # type: ignore[arg-type]


async def test_broker_outage_mid_burst_loses_nothing_and_ingest_never_stops(mosquitto, tmp_path):
    replay = burst_file(tmp_path / "burst.jsonl", 1000)
    store = Store(tmp_path / "daemon.db")
    pipeline = Pipeline.resume(store, SentimentScorer(), Engine(load_rules([write_rules(tmp_path / "rules")]).rules))
    relay = relay_for(store, mosquitto.url)
    loop = asyncio.get_running_loop()
    async with Collector(mosquitto.port, [f"{PREFIX}/alerts/#"]) as collector:
        runner = asyncio.create_task(relay.run())
        batches = list(ReplayReader(replay).batches(25))
        expected: set[tuple[str, int]] = set()
        ingested_while_down = 0
        stopped_at = None
        for number, batch in enumerate(batches):
            if number == len(batches) // 4:
                await asyncio.to_thread(mosquitto.stop)
                stopped_at = loop.time()
            result = pipeline.ingest(batch)
            expected |= {(a.id, a.seq) for a in result.alerts}
            relay.wake()
            if stopped_at is not None and not relay.connected:
                ingested_while_down += 1
            await asyncio.sleep(0.02)
        # The pipeline took every batch while the relay was cut off, in the same event loop.
        assert ingested_while_down >= len(batches) // 2
        assert relay.pending > 0 and relay.last_error
        assert stopped_at is not None
        await asyncio.sleep(max(0.0, stopped_at + 10 - loop.time()))
        await asyncio.to_thread(mosquitto.start)
        await collector.wait_for(lambda: {(p["id"], p["seq"]) for p in collector.alerts()} >= expected,
                                 timeout_s=60)
        await relay.close(drain_timeout_s=5)
        await runner
    ids = {p["id"] for p in collector.alerts()}
    assert len([a for a in expected if a[0].startswith("cry-for-help")]) == 1000
    assert ids == {i for i, _ in expected}
    assert relay.pending == 0
    assert relay.stats.connects >= 2 and relay.stats.connect_failures >= 1
    for payload in collector.alerts()[:50]:
        VALIDATOR.validate(payload)
    store.close()


def start_daemon(store: Path, replay: Path, rules: Path, url: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, str(ROOT / "tests" / "relay_proc.py"), str(store), str(replay),
                             str(rules), url, "--batch", "10", "--pause-s", "0.03"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


async def test_sigkill_mid_drain_then_restart_delivers_the_rest_without_inventing_ids(mosquitto, tmp_path):
    replay = burst_file(tmp_path / "burst.jsonl", 400)
    rules = write_rules(tmp_path / "rules")
    reference, ref_store = run_backtest(replay, load_rules([rules]).rules, tmp_path / "reference.db")
    expected = {(p.alert_id, p.alert_seq) for p in ref_store.pending(limit=10_000)}
    ref_store.close()
    assert any(i.startswith("thread-pileup") for i, _ in expected)

    store = tmp_path / "daemon.db"
    async with Collector(mosquitto.port, [f"{PREFIX}/alerts/#"]) as collector:
        first = start_daemon(store, replay, rules, mosquitto.url)
        await collector.wait_for(lambda: len(collector.alerts()) >= 100, timeout_s=60)
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
        seen_before_restart = {(p["id"], p["seq"]) for p in collector.alerts()}
        assert seen_before_restart < expected, "the kill should come before the end of the drain"
        # The last will: the broker says the daemon is gone, and keeps saying it.
        status = await retained(mosquitto.port, f"{PREFIX}/status")
        assert status[f"{PREFIX}/status"]["state"] == "offline"

        second = start_daemon(store, replay, rules, mosquitto.url)
        try:
            await collector.wait_for(lambda: {(p["id"], p["seq"]) for p in collector.alerts()} >= expected,
                                     timeout_s=60)
            status = await retained(mosquitto.port, f"{PREFIX}/status")
            assert status[f"{PREFIX}/status"]["state"] == "online"
            await asyncio.sleep(0.5)
        finally:
            second.send_signal(signal.SIGTERM)
            out, err = second.communicate(timeout=30)
        assert second.returncode == 0, err
    received = {(p["id"], p["seq"]) for p in collector.alerts()}
    # Every message of the uninterrupted run arrived, and no episode got a second, invented id.
    assert received == expected
    # An orderly shutdown says offline itself.
    status = await retained(mosquitto.port, f"{PREFIX}/status")
    assert status[f"{PREFIX}/status"]["state"] == "offline"


async def test_active_alert_is_retained_renotified_acked_and_cleared(mosquitto, tmp_path, make_mention):
    from conftest import run_cli

    store = Store(tmp_path / "daemon.db")
    rules = load_rules([write_rules(tmp_path / "rules")]).rules
    pipeline = Pipeline.resume(store, SentimentScorer(), Engine(rules))
    relay = relay_for(store, mosquitto.url, renotify_after_s=0.5)
    runner = asyncio.create_task(relay.run())
    async with Collector(mosquitto.port, [f"{PREFIX}/alerts/#", f"{PREFIX}/acks"]) as collector:
        fired = pipeline.ingest([make_mention("help me please", author="sam", thread="at://x/1#+")]).alerts
        relay.wake()
        (alert,) = fired
        topic = f"{PREFIX}/active/cry-for-help/{group_slug('author=sam')}"
        await collector.wait_for(lambda: any(p.get("renotify", 0) >= 1 for p in collector.alerts()), 10)
        active = await retained(mosquitto.port, f"{PREFIX}/active/#")
        assert active[topic]["id"] == alert.id and active[topic]["ack"] is None

        result = await asyncio.to_thread(run_cli, "alerts", "ack", alert.id, "--by", "Sam Lee", "--note",
                                         "calling the crisis line", "--broker", mosquitto.url, timeout=60)
        assert result.returncode == 0, result.stderr
        assert f"{alert.id} acknowledged by Sam Lee" in result.stdout
        active = await retained(mosquitto.port, f"{PREFIX}/active/#")
        assert active[topic]["ack"]["by"] == "Sam Lee"
        assert active[topic]["ack"]["note"] == "calling the crisis line"
        renotified = relay.stats.renotified
        await asyncio.sleep(1.6)  # three re-notify intervals: acknowledged, so no more
        assert relay.stats.renotified == renotified

        # An ack for an episode that does not exist is answered, not applied.
        bad = await asyncio.to_thread(run_cli, "alerts", "ack", "no-such-episode", "--broker", mosquitto.url,
                                      timeout=60)
        assert bad.returncode == 1 and "no active episode" in bad.stderr

        # Acknowledgements survive a restart of the daemon.
        await relay.close(drain_timeout_s=2)
        await runner
        relay = relay_for(store, mosquitto.url, renotify_after_s=0.5)
        runner = asyncio.create_task(relay.run())
        await asyncio.sleep(1.2)
        assert relay.stats.renotified == 0
        active = await retained(mosquitto.port, f"{PREFIX}/active/#")
        assert active[topic]["ack"]["by"] == "Sam Lee"

        # Resolving clears the retained active message.
        resolved = pipeline.tick(alert.fired_at_ts + 3600 + 1)
        assert [a.status for a in resolved] == ["resolved"]
        relay.wake()
        await collector.wait_for(lambda: any(p["status"] == "resolved" for p in collector.alerts()), 10)
        assert topic not in await retained(mosquitto.port, f"{PREFIX}/active/#")
        last = [p for p in collector.alerts() if p["status"] == "resolved"][-1]
        assert last["ack"]["by"] == "Sam Lee"
        for payload in collector.alerts():
            VALIDATOR.validate(payload)
        await relay.close(drain_timeout_s=2)
        await runner
    store.close()
