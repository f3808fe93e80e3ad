"""The bundled demo: the scenario the comms team cares about, through the whole path."""

from __future__ import annotations

import asyncio
import json
import sys

import aiomqtt

from listener.demo import scenario
from listener.paths import DEMO_SCENARIO

from conftest import free_port, run_cli


def test_bundled_scenario_is_what_the_generator_makes():
    generated = "".join(json.dumps(m, ensure_ascii=False) + "\n" for m in scenario.generate())
    assert DEMO_SCENARIO.read_text(encoding="utf-8") == generated, (
        "regenerate: python -m listener.demo.scenario > listener/demo/scenario.jsonl")


def test_demo_alerts_on_backlash_and_crisis_but_not_on_thanks():
    result = run_cli("demo", "--no-publish")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "CRITICAL FIRING   Person in crisis" in out
    assert "HIGH     FIRING   Backlash on a post" in out
    # The thank-you wave lives in the food-drive thread; no alert may point at it.
    thanks_thread = next(json.loads(line)["thread"] for line in DEMO_SCENARIO.read_text().splitlines()
                         if json.loads(line)["watch"] == "food-drive-post")
    jsonl = run_cli("replay", str(DEMO_SCENARIO), "--rules", "rules", "--format", "jsonl").stdout
    alerts = [json.loads(line) for line in jsonl.splitlines()]
    assert not [a for a in alerts if a["group"]["values"].get("thread") == thanks_thread]
    backlash = [a for a in alerts if a["rule"] == "backlash-on-post" and a["status"] == "firing"]
    assert backlash and all(s["url"] for s in backlash[0]["samples"])


def test_demo_says_so_in_one_line_when_no_broker_answers():
    port = free_port()
    result = run_cli("demo", "--broker", f"mqtt://127.0.0.1:{port}")
    assert result.returncode == 0
    assert f"No MQTT broker answered at mqtt://127.0.0.1:{port}; the alerts are shown above only." in result.stdout
    assert "CRITICAL FIRING" in result.stdout


async def test_demo_publishes_to_a_broker_that_answers(mosquitto):
    async with aiomqtt.Client("127.0.0.1", mosquitto.port) as client:
        await client.subscribe("social-listener/alerts/#", qos=1)
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "listener", "demo", "--broker", mosquitto.url,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, _ = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 0
        assert b"Published" in out
        first = await asyncio.wait_for(anext(aiomqtt_messages(client)), 10)
        assert json.loads(first.payload)["schema_version"] == 1


async def aiomqtt_messages(client):
    async for message in client.messages:
        yield message
