"""Hot reload: unchanged rules keep state, bad files keep the last good rules and alert, the watcher sees edits."""

from __future__ import annotations

import asyncio
from pathlib import Path

import jsonschema

from listener.paths import ALERT_SCHEMA
from listener.rules import Engine, load_rules
from listener.rules.reload import INVALID_RULES_ID, RuleReloader, RuleWatcher

from conftest import T0

import json

T = T0.timestamp()
BURST = """\
rules:
  - id: burst
    kind: threshold
    window: 30m
    conditions: ["count >= 3"]
    group_by: [thread]
    cooldown: 0s
"""
CRISIS = """\
  - id: crisis
    kind: match
    match: {any: [want to die]}
"""


def setup(tmp_path: Path, text: str = BURST) -> tuple[Path, Engine, RuleReloader]:
    path = tmp_path / "rules.yaml"
    path.write_text(text)
    engine = Engine(load_rules([tmp_path]).rules)
    return path, engine, RuleReloader(engine, [tmp_path])


def test_unchanged_rule_keeps_its_window_and_episode(tmp_path, make_mention):
    path, engine, reloader = setup(tmp_path)
    fired = engine.process([make_mention(at_s=i, thread="t") for i in range(3)])
    path.write_text(BURST.replace("cooldown: 0s", "cooldown: 0s\n    description: edited text only") + CRISIS)
    result = reloader.reload(T + 10)
    assert result.ok and result.added == ["crisis"] and result.changed == [] and result.alerts == []
    # The window still holds three mentions and the episode is still open: no second firing.
    assert engine.process([make_mention(at_s=20, thread="t")]) == []
    assert [r.description for r in engine.rules if r.id == "burst"] == ["edited text only"]
    resolved = engine.advance(T + 20 + 1800)
    assert [(a.status, a.id) for a in resolved] == [("resolved", fired[0].id)]


def test_changed_rule_starts_fresh_and_its_open_episode_is_resolved(tmp_path, make_mention):
    path, engine, reloader = setup(tmp_path)
    fired = engine.process([make_mention(at_s=i, thread="t") for i in range(3)])
    path.write_text(BURST.replace("count >= 3", "count >= 5"))
    result = reloader.reload(T + 10)
    assert result.ok and result.changed == ["burst"]
    assert [(a.status, a.id) for a in result.alerts] == [("resolved", fired[0].id)]
    assert "reload" in result.alerts[0].explanation
    # Fresh state: the three old mentions are gone, five new ones are needed.
    assert engine.process([make_mention(at_s=20 + i, thread="t") for i in range(4)]) == []
    assert len(engine.process([make_mention(at_s=30, thread="t")])) == 1


def test_removed_rule_is_dropped(tmp_path, make_mention):
    path, engine, reloader = setup(tmp_path, BURST + CRISIS)
    path.write_text(BURST)
    result = reloader.reload(T)
    assert result.removed == ["crisis"] and [r.id for r in engine.rules] == ["burst"]
    assert engine.process([make_mention("I want to die", at_s=0)]) == []


def test_invalid_reload_keeps_the_last_good_rules_and_alerts_until_fixed(tmp_path, make_mention):
    path, engine, reloader = setup(tmp_path)
    path.write_text(BURST.replace("window: 30m", "windw: 30m"))
    bad = reloader.reload(T + 5)
    assert not bad.ok
    assert f"{path}:4:5: unknown key 'windw', did you mean 'window'?" in [str(p) for p in bad.problems]
    (alert,) = bad.alerts
    assert (alert.rule, alert.severity, alert.status) == (INVALID_RULES_ID, "high", "firing")
    assert "did you mean 'window'" in alert.summary
    jsonschema.validate(alert.to_payload(), json.loads(ALERT_SCHEMA.read_text()))
    # The old rule still runs.
    assert len(engine.process([make_mention(at_s=i, thread="t") for i in range(3)])) == 1
    again = reloader.reload(T + 60)
    assert again.alerts[0].id == alert.id and again.alerts[0].seq == 2
    path.write_text(BURST)
    fixed = reloader.reload(T + 120)
    assert fixed.ok and [(a.rule, a.status, a.id) for a in fixed.alerts] == [(INVALID_RULES_ID, "resolved", alert.id)]


async def test_watcher_reloads_after_an_edit_settles(tmp_path):
    path, engine, reloader = setup(tmp_path)
    results = []
    changed = asyncio.Event()

    def on_change() -> None:
        results.append(reloader.reload(T))
        changed.set()

    watcher = RuleWatcher([tmp_path], on_change, interval_s=0.05)
    task = asyncio.create_task(watcher.run())
    try:
        await asyncio.sleep(0.2)
        assert results == []  # nothing changed, nothing reloaded
        (tmp_path / "more.yaml").write_text("rules:\n" + CRISIS)
        await asyncio.wait_for(changed.wait(), 10)
        assert results[0].ok and results[0].added == ["crisis"]
        assert {r.id for r in engine.rules} == {"burst", "crisis"}
    finally:
        task.cancel()
