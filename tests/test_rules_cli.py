"""`listener rules check` and `listener rules test` as a rule author runs them; suggestions inside every kind."""

from __future__ import annotations

from pathlib import Path

import pytest

from listener.errors import ConfigError
from listener.rules import load_rules

from conftest import run_cli

KINDS = {
    "match": "    match: {any: [help]}\n",
    "threshold": "    window: 30m\n    conditions: ['count >= 3']\n",
    "spike": "    window: 30m\n    baseline: {type: trailing, period: 1d}\n",
    "sentiment_shift": "    window: 30m\n    drop: 0.3\n",
    "flatline": "    silent_for: 1h\n",
}


def rule_file(tmp_path: Path, kind: str, extra: str = "") -> Path:
    path = tmp_path / f"{kind}.yaml"
    path.write_text(f"rules:\n  - id: r-{kind.replace('_', '-')}\n    kind: {kind}\n" + KINDS[kind] + extra)
    return path


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_misspelt_key_is_located_and_corrected_in_every_kind(tmp_path, kind):
    path = rule_file(tmp_path, kind, "    cooldwn: 1h\n")
    with pytest.raises(ConfigError) as info:
        load_rules([path])
    (problem,) = info.value.problems
    line = len(path.read_text().splitlines())
    assert str(problem) == f"{path}:{line}:5: unknown key 'cooldwn', did you mean 'cooldown'?"


@pytest.mark.parametrize("kind, key, nested, guess", [
    ("spike", "baseline", "perod", "period"),
    ("threshold", "flag", "complund_max", "compound_max"),
    ("match", "escalate", "severty", "severity"),
])
def test_suggestions_inside_nested_blocks(tmp_path, kind, key, nested, guess):
    blocks = {
        "baseline": "    baseline: {type: trailing, perod: 1d}\n",
        "flag": "    flag: {any_of: [{complund_max: -0.3}]}\n",
        "escalate": "    severity: low\n    escalate: [{severty: high, conditions: ['count >= 2']}]\n",
    }
    path = tmp_path / "r.yaml"
    body = KINDS[kind] if key != "baseline" else "    window: 30m\n"
    path.write_text(f"rules:\n  - id: r\n    kind: {kind}\n" + body + blocks[key])
    with pytest.raises(ConfigError) as info:
        load_rules([path])
    messages = [p.message for p in info.value.problems]
    assert f"unknown key {nested!r}, did you mean {guess!r}?" in messages


def test_rules_check_exit_codes_and_problem_lines(tmp_path):
    good = rule_file(tmp_path, "threshold")
    result = run_cli("rules", "check", str(good))
    assert result.returncode == 0, result.stderr
    assert "1 rules in 1 files: 0 errors" in result.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text(good.read_text().replace("window:", "windw:"))
    result = run_cli("rules", "check", str(bad))
    assert result.returncode == 1
    assert f"{bad}:4:5: unknown key 'windw', did you mean 'window'?" in result.stderr.splitlines()


def test_rules_check_reports_a_passed_review_date_and_explains(tmp_path):
    path = rule_file(tmp_path, "spike", "    review_by: 2026-01-31\n    description: Busy.\n")
    result = run_cli("rules", "check", "--explain", "--today", "2026-02-01", str(path))
    assert result.returncode == 0
    assert f"{path}:2: warning: rule 'r-spike': review_by 2026-01-31 has passed" in result.stderr
    assert "at least 3x its baseline (over the preceding 1d)" in result.stdout
    assert "Stays quiet until it has seen 1d 30m of history" in result.stdout
    assert run_cli("rules", "check", "--strict", "--today", "2026-02-01", str(path)).returncode == 1
    assert run_cli("rules", "check", "--today", "2026-01-31", str(path)).stderr.count("warning:") == 0


def test_rules_check_warns_of_a_word_boundary_beside_a_letter_re2_does_not_know(tmp_path):
    """RE2's \\b knows only ASCII letters: "\\bça va" never matches "ok ça va", and an author should hear so."""
    import re2

    path = tmp_path / "fr.yaml"
    path.write_text("rules:\n  - id: menace\n    kind: match\n    match:\n"
                    "      regex: '\\bça va péter\\b|\\bje serai plus là\\b'\n", encoding="utf-8")
    result = run_cli("rules", "check", str(path))
    assert result.returncode == 0
    assert "match.regex: \\b next to 'ç', 'à' never matches there" in result.stderr
    assert re2.search(r"\bça va", "ok ça va péter") is None and re2.search(r"ça va", "ok ça va péter")
    path.write_text(path.read_text(encoding="utf-8").replace("\\bça", "ça").replace("là\\b", "là"), encoding="utf-8")
    assert "warning:" not in run_cli("rules", "check", str(path)).stderr


def test_shipped_library_checks_clean_and_every_rule_explains():
    result = run_cli("rules", "check", "--strict", "--explain", "--today", "2026-12-01", "rules")
    assert result.returncode == 0, result.stderr
    for rule in load_rules(["rules"]).rules:
        assert f"{rule.id} ({rule.kind}" in result.stdout


def test_rules_test_passes_and_fails_with_expected_against_actual(tmp_path):
    rules = rule_file(tmp_path, "threshold")
    test = tmp_path / "r.test.yaml"
    test.write_text(
        "rule_files: [threshold.yaml]\n"
        "tests:\n"
        "  - name: three fire\n"
        "    mentions: [{at: +0s, every: 1m, repeat: 3, text: hi, compound: 0.1}]\n"
        "    expect:\n"
        "      - at: +5m\n"
        "        alerts: [{rule: r-threshold, severity: medium}]\n"
        "  - name: two do not\n"
        "    mentions: [{at: +0s, every: 1m, repeat: 2, text: hi}]\n"
        "    expect: [{at: +1h, alerts: [{rule: r-threshold}]}]\n"
    )
    result = run_cli("rules", "test", "-v", str(tmp_path))
    assert result.returncode == 1
    assert f"PASS {test}:3 three fire" in result.stdout
    assert f"FAIL {test}:8 two do not" in result.stdout
    assert ("    expected: r-threshold firing\n    actual:   no alerts\n    missing:  r-threshold firing"
            in result.stdout)
    assert "1 passed, 1 failed" in result.stderr
    assert rules.exists()


def test_rules_test_reports_a_bad_test_file_with_its_position(tmp_path):
    rule_file(tmp_path, "threshold")
    test = tmp_path / "bad.test.yaml"
    test.write_text("rule_files: [threshold.yaml]\ntests:\n  - name: x\n    mentoins: []\n    expect: [{at: +1m}]\n")
    result = run_cli("rules", "test", str(test))
    assert result.returncode == 1
    assert f"{test}:4:5: unknown key 'mentoins', did you mean 'mentions'?" in result.stderr


def test_shipped_rule_tests_pass_from_the_command_line():
    result = run_cli("rules", "test", "rules/tests")
    assert result.returncode == 0, result.stdout + result.stderr
    assert " 0 failed" in result.stderr


def test_replay_summary_names_rules_that_lacked_history():
    result = run_cli("replay", "listener/demo/scenario.jsonl", "--rules", "rules", "--format", "jsonl")
    assert result.returncode == 0, result.stderr
    lines = {line.split()[0]: line for line in result.stderr.splitlines() if line.startswith("  ")}
    assert "up to high" in lines["backlash-on-post"]
    assert "quiet for lack of history: needs 1d 1h of history, had 3h 59m" in lines["hashtag-volume-spike"]
    assert "lack of history" not in lines["person-in-crisis"]
    # The crisis post came less than its 2 h resolve_after before the recording ends; backlash resolved.
    assert "1 still open at the end" in lines["person-in-crisis"]
    assert "still open" not in lines["backlash-on-post"]
