"""`listener rules examples`: what the daemon saw, as training examples for the team to label."""

from __future__ import annotations

import json
from pathlib import Path

from listener.backtest import run_backtest
from listener.paths import SHIPPED_RULES
from listener.rules import load_rules
from listener.rules.training import Examples, read_labelled, train

from conftest import run_cli

CRISIS = SHIPPED_RULES / "eval" / "scenarios" / "crisis.jsonl"


def replayed(tmp_path: Path) -> Path:
    db = tmp_path / "store.db"
    _, store = run_backtest(CRISIS, load_rules([SHIPPED_RULES]).rules, db)
    store.close()
    return db


def examples(*args: str) -> tuple[list[dict[str, str]], str]:
    result = run_cli("rules", "examples", *args)
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()], result.stderr


def test_the_alerts_of_classifier_rules_and_a_sample_of_ordinary_mentions(tmp_path):
    db = replayed(tmp_path)
    rows, said = examples("--db", str(db), "--rules", str(SHIPPED_RULES), "--ordinary", "25")
    alerted = [r for r in rows if r["label"] != "none"]
    ordinary = [r for r in rows if r["label"] == "none"]
    # the recording's three people in crisis, each once, whole, labelled as the rule asks its classifier
    assert [r["label"] for r in alerted] == ["crisis"] * 3
    assert all("person-in-crisis" in r["why"] and "false alarm" in r["why"] for r in alerted)
    assert any(len(r["text"]) > 200 for r in alerted)  # the stored text, not the alert's cut example
    assert len(ordinary) == 25 and not {r["text"] for r in ordinary} & {r["text"] for r in alerted}
    assert "3 examples from the alerts of crime-tip, person-in-crisis, threat-against-officers" in said
    # the same draw for the same seed, another for another
    again, _ = examples("--db", str(db), "--rules", str(SHIPPED_RULES), "--ordinary", "25")
    other, _ = examples("--db", str(db), "--rules", str(SHIPPED_RULES), "--ordinary", "25", "--seed", "2")
    assert again == rows and other != rows
    # and the file, once checked, is training input as it stands
    path = tmp_path / "checked.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    ex = Examples()
    read_labelled([path], ex)
    assert not ex.problems and train(ex, min_df=1)["labels"] == ["crisis"]


def test_chosen_rules_labels_and_dates(tmp_path):
    db = replayed(tmp_path)
    rows, _ = examples("--db", str(db), "--rule", "person-in-crisis=self-harm")
    assert [r["label"] for r in rows] == ["self-harm"] * 3
    rows, _ = examples("--db", str(db), "--rule", "person-in-crisis=crisis", "--since", "2030-01-01",
                       "--ordinary", "5")
    assert rows == []  # nothing from that date on
    result = run_cli("rules", "examples", "--db", str(db), "--rule", "person-in-crisis")
    assert result.returncode != 0 and "write RULE=LABEL" in result.stderr
    result = run_cli("rules", "examples", "--db", str(db), "--rule", "a=b", "--since", "last week")
    assert result.returncode != 0 and "--since" in result.stderr and "write a date like 2026-10-01" in result.stderr
    result = run_cli("rules", "examples", "--db", str(tmp_path / "absent.db"), "--rule", "a=b")
    assert result.returncode != 0 and "no such store" in result.stderr
