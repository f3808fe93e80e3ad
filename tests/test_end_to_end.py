"""From a replay file to alerts on a real, private mosquitto, as a user runs it."""

from __future__ import annotations

import asyncio
import json
import sys

import aiomqtt
import jsonschema

from listener.paths import ALERT_SCHEMA, DEMO_SCENARIO, SHIPPED_RULES

from conftest import run_cli

VALIDATOR = jsonschema.Draft202012Validator(json.loads(ALERT_SCHEMA.read_text()),
                                            format_checker=jsonschema.FormatChecker())


async def collect(broker_port: int, topics: list[str], command: list[str], expect: int,
                  timeout_s: float = 60) -> tuple[list[aiomqtt.Message], int, str]:
    """Subscribe first, then run the command; gather messages until `expect` arrive."""
    messages: list[aiomqtt.Message] = []
    async with aiomqtt.Client("127.0.0.1", broker_port, identifier="test-subscriber") as client:
        for topic in topics:
            await client.subscribe(topic, qos=1)
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "listener", *command,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)

        async def gather() -> None:
            async for message in client.messages:
                if message.retain:
                    continue
                messages.append(message)
                if len(messages) >= expect:
                    return

        _, err = await asyncio.wait_for(proc.communicate(), timeout_s)
        try:
            await asyncio.wait_for(gather(), 10)
        except TimeoutError:
            pass
        return messages, proc.returncode or 0, err.decode()


async def test_replay_publishes_valid_alerts_to_a_real_broker(mosquitto):
    expected = run_cli("replay", str(DEMO_SCENARIO), "--rules", str(SHIPPED_RULES), "--format", "jsonl")
    assert expected.returncode == 0, expected.stderr
    printed = [json.loads(line) for line in expected.stdout.splitlines()]
    assert printed, "the demo scenario should fire alerts"

    messages, code, err = await collect(
        mosquitto.port, ["social-listener/alerts/#", "social-listener/routes/#"],
        ["replay", str(DEMO_SCENARIO), "--rules", str(SHIPPED_RULES), "--format", "jsonl",
         "--broker", mosquitto.url], expect=len(printed))
    assert code == 0, err
    received = [json.loads(m.payload) for m in messages]
    for payload in received:
        VALIDATOR.validate(payload)
    assert {(p["id"], p["seq"]) for p in received} == {(p["id"], p["seq"]) for p in printed}
    topics = {str(m.topic) for m in messages}
    assert "social-listener/alerts/critical/person-in-crisis" in topics
    assert "social-listener/routes/tips/medium/crime-tip" in topics
    assert f"published {len(printed)} alert messages" in err


def test_replay_jsonl_prints_one_alert_per_line_and_skips_bad_lines(tmp_path):
    lines = DEMO_SCENARIO.read_text().splitlines()
    lines.insert(5, "{broken")
    path = tmp_path / "with-bad-line.jsonl"
    path.write_text("\n".join(lines) + "\n")
    result = run_cli("replay", str(path), "--rules", str(SHIPPED_RULES), "--format", "jsonl")
    assert result.returncode == 0
    for line in result.stdout.splitlines():
        VALIDATOR.validate(json.loads(line))
    assert f"{path}:6: not valid JSON" in result.stderr
    assert "1 bad lines skipped" in result.stderr


def test_replay_reports_a_broken_rule_file_with_its_position(tmp_path):
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "r.yaml").write_text("rules:\n  - id: x\n    kind: match\n    severty: high\n")
    result = run_cli("replay", str(DEMO_SCENARIO), "--rules", str(rules))
    assert result.returncode == 1
    assert f"{rules / 'r.yaml'}:4:5: unknown key 'severty', did you mean 'severity'?" in result.stderr


def test_replay_with_unreachable_broker_fails_clearly(tmp_path):
    from conftest import free_port

    port = free_port()
    result = run_cli("replay", str(DEMO_SCENARIO), "--rules", str(SHIPPED_RULES),
                     "--broker", f"mqtt://127.0.0.1:{port}")
    assert result.returncode == 1
    assert f"cannot connect to mqtt://127.0.0.1:{port}" in result.stderr
