"""`listener alerts tail` and `alerts ack` as the comms team runs them, against a real mosquitto."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from listener.publish import MqttPublisher, parse_broker_url

from conftest import ROOT, free_port, run_cli

EXAMPLES = ROOT / "alerts" / "examples"


def example(name: str, **changes: Any) -> dict[str, Any]:
    return {**json.loads((EXAMPLES / name).read_text()), **changes}


async def tail(*args: str) -> asyncio.subprocess.Process:
    """Start `listener alerts tail` and wait until it says it is listening."""
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "listener", "alerts", "tail", *args,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    assert proc.stderr is not None
    line = await asyncio.wait_for(proc.stderr.readline(), 30)
    assert b"listening to" in line, line
    return proc


async def publish(url: str, payloads: list[dict[str, Any]]) -> None:
    async with MqttPublisher(parse_broker_url(url, client_id="test-publisher")) as pub:
        for p in payloads:
            await pub.publish_alert(p)


async def test_tail_json_filters_by_severity_and_drops_duplicates(mosquitto):
    proc = await tail("--broker", mosquitto.url, "--json", "--min-severity", "high", "--count", "3")
    crisis = example("crisis-firing-reminder.json", renotify=0)
    reminder = example("crisis-firing-reminder.json")
    await publish(mosquitto.url, [
        example("tip-routed.json"),  # medium: below --min-severity high
        example("backlash-firing.json"),
        example("backlash-firing.json"),  # at-least-once: the same message twice shows once
        crisis,
        reminder,  # a reminder is a message of its own
    ])
    out, _ = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0
    shown = [json.loads(line) for line in out.decode().splitlines()]
    assert [(p["rule"], p["seq"], p["renotify"]) for p in shown] == [
        ("backlash-on-post", 1, 0), ("person-in-crisis", 1, 0), ("person-in-crisis", 1, 1)]


async def test_tail_text_is_readable_at_a_glance_and_shows_routed_alerts(mosquitto):
    proc = await tail("--broker", mosquitto.url, "--count", "2")
    await publish(mosquitto.url, [example("backlash-resolved-acknowledged.json"), example("tip-routed.json")])
    out, _ = await asyncio.wait_for(proc.communicate(), 30)
    text = out.decode()
    assert "HIGH     RESOLVED Backlash on a post" in text
    assert "acknowledged by Dana Okafor (comms)" in text
    assert "why: count" in text and "https://www.instagram.com/p/" in text
    assert "MEDIUM   FIRING" in text and "crime-tip" in text


def test_ack_without_a_daemon_says_it_was_not_confirmed(mosquitto):
    result = run_cli("alerts", "ack", "backlash-on-post-0000000000000000", "--broker", mosquitto.url,
                     "--wait", "0.5")
    assert result.returncode == 3
    assert "did not answer within 0.5s" in result.stderr


def test_ack_with_unreachable_broker_fails_clearly():
    port = free_port()
    result = run_cli("alerts", "ack", "x-1", "--broker", f"mqtt://127.0.0.1:{port}")
    assert result.returncode == 1
    assert f"cannot connect to mqtt://127.0.0.1:{port}: connection refused" in result.stderr


def test_alerts_commands_take_the_broker_from_the_config_file(mosquitto, tmp_path: Path):
    config = tmp_path / "config.yaml"
    config.write_text(f"broker:\n  url: {mosquitto.url}\n  prefix: metro\n")
    result = run_cli("alerts", "ack", "x-1", "--config", str(config), "--wait", "0.3")
    assert result.returncode == 3, result.stderr
