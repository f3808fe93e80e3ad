"""The alert contract in alerts/: schemas, examples, docs that cannot drift, bounded payloads."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Iterator

import jsonschema
import pytest

from listener.alert import Alert
from listener.backtest import run_backtest
from listener.paths import DEMO_SCENARIO, ROOT, SHIPPED_RULES
from listener.pipeline import Pipeline
from listener.publish.topics import active_topic, group_slug
from listener.rules import Engine, load_rules
from listener.sentiment import SentimentScorer
from listener.store import Store

from delivery_helpers import write_rules

ALERTS = ROOT / "alerts"
README = (ALERTS / "README.md").read_text(encoding="utf-8")


def validator(name: str) -> jsonschema.Draft202012Validator:
    schema = json.loads((ALERTS / name).read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())


def schema_for(example: Path) -> str:
    for kind in ("ack", "status"):
        if example.name.startswith(f"{kind}-"):
            return f"{kind}.schema.json"
    return "alert.schema.json"


EXAMPLES = sorted((ALERTS / "examples").glob("*.json"))


@pytest.mark.parametrize("example", EXAMPLES, ids=[e.name for e in EXAMPLES])
def test_every_example_validates_against_its_schema(example):
    validator(schema_for(example)).validate(json.loads(example.read_text()))


def test_examples_cover_each_kind_of_message():
    names = {e.name for e in EXAMPLES}
    assert {"backlash-firing.json", "backlash-resolved-acknowledged.json", "crisis-firing-reminder.json",
            "tip-routed.json", "ack-answer.json", "status-online.json", "status-offline.json"} <= names


FREE_FORM = {"values", "labels"}  # maps whose keys are data (group parts, rule labels), not fields


def keys(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(value, dict):
        for k, v in value.items():
            yield path + k, k
            if k not in FREE_FORM:
                yield from keys(v, f"{path}{k}.")
    elif isinstance(value, list):
        for item in value:
            yield from keys(item, path)


def schema_properties(schema: Any) -> Iterator[str]:
    if isinstance(schema, dict):
        for name, sub in schema.get("properties", {}).items():
            yield name
            yield from schema_properties(sub)
        for k, v in schema.items():
            if k != "properties":
                yield from schema_properties(v)
    elif isinstance(schema, list):
        for item in schema:
            yield from schema_properties(item)


CODE_SPANS = re.findall(r"`([^`\n]+)`", README)


def documented(name: str) -> bool:
    """Named in a code span of the README: `name`, or inside one such as `group.key`."""
    word = re.compile(rf"\b{re.escape(name)}\b")
    return any(word.search(span) for span in CODE_SPANS)


def demo_payloads(tmp_path: Path) -> list[dict[str, Any]]:
    alerts: list[Alert] = []
    _, store = run_backtest(DEMO_SCENARIO, load_rules([SHIPPED_RULES]).rules, tmp_path / "demo.db",
                            on_alert=alerts.append)
    store.close()
    return [a.to_payload() for a in alerts]


def test_every_payload_field_is_documented_in_the_alerts_readme(tmp_path):
    names: set[str] = set()
    for schema in ("alert.schema.json", "ack.schema.json", "status.schema.json"):
        names |= set(schema_properties(json.loads((ALERTS / schema).read_text())))
    for payload in demo_payloads(tmp_path) + [json.loads(e.read_text()) for e in EXAMPLES]:
        names |= {name for _, name in keys(payload)}
    missing = sorted(n for n in names if not documented(n))
    assert not missing, f"fields not described in alerts/README.md: {missing}"


def test_engine_payloads_validate(tmp_path):
    v = validator("alert.schema.json")
    payloads = demo_payloads(tmp_path)
    assert payloads
    for p in payloads:
        v.validate(p)


def test_payload_size_is_bounded_however_long_the_posts_and_templates(tmp_path, make_mention):
    rules_dir = tmp_path / "rules"
    rules_dir.mkdir()
    (rules_dir / "long.yaml").write_text(
        "rules:\n  - id: wordy\n    kind: threshold\n    severity: high\n    window: 1h\n"
        "    conditions: ['count >= 20']\n    title: '" + "{sample_text} " * 5 + "'\n"
        "    message: '" + "{sample_text} {top_terms} " * 20 + "'\n"
        "    description: '" + "very long description " * 200 + "'\n")
    engine = Engine(load_rules([rules_dir]).rules)
    words = " ".join(f"word{i}" for i in range(2000))
    alerts = engine.process([make_mention(f"{words} number {i}", at_s=i, compound=-0.9, author=f"a{i}")
                             for i in range(30)])
    (payload,) = [a.to_payload() for a in alerts]
    validator("alert.schema.json").validate(payload)
    size = len(json.dumps(payload, ensure_ascii=False).encode())
    assert size < 8_000, size
    assert len(payload["samples"]) == 5 and all(len(s["text"]) <= 500 for s in payload["samples"])
    assert payload["title"].endswith("…") and len(payload["title"]) == 200


def test_active_topic_is_safe_and_stable_for_any_group_key():
    key = "thread=at://did:plc:x/app.bsky.feed.post/3k+#y " + "x" * 500
    topic = active_topic("metro", {"rule": "backlash-on-post", "group": {"key": key}})
    assert topic == f"metro/active/backlash-on-post/{group_slug(key)}"
    level = topic.rsplit("/", 1)[1]
    assert re.fullmatch(r"[0-9a-f]{16}", level)
    assert group_slug(key) == group_slug(str(key)) != group_slug(key + "!")


def test_a_resumed_pipeline_continues_episodes_instead_of_inventing_new_ids(tmp_path, make_mention):
    rules = load_rules([write_rules(tmp_path / "rules")]).rules

    def awful(at_s: float) -> Any:
        return make_mention("awful", at_s=at_s, thread="t1", compound=-0.5)

    store = Store(tmp_path / "a.db")
    first = Pipeline.resume(store, SentimentScorer(), Engine(rules))
    (fired,) = first.ingest([awful(0), awful(10), awful(20)]).alerts
    store.close()

    store = Store(tmp_path / "a.db")
    resumed = Pipeline.resume(store, SentimentScorer(), Engine(rules))
    assert resumed.ingest([awful(30), awful(40)]).alerts == []  # still the same episode
    # Its windows were refilled from the store: resolving needs the old mentions to leave.
    (resolved,) = resumed.tick(fired.fired_at_ts + 600 + 40 + 300 + 1)
    assert (resolved.id, resolved.status, resolved.seq) == (fired.id, "resolved", 2)
    assert resolved.metrics["count"] < 3
    store.close()

    # Without the saved state a fresh engine would announce the same pile-up as a new episode.
    store = Store(tmp_path / "b.db")
    naive = Pipeline(store, SentimentScorer(), Engine(rules))
    naive.ingest([awful(0), awful(10), awful(20)])
    naive_again = Pipeline(store, SentimentScorer(), Engine(rules))
    (invented,) = naive_again.ingest([awful(30), awful(40), awful(50)]).alerts
    assert invented.id != fired.id
    store.close()
