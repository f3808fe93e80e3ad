"""Rule files: located errors, suggestions, duplicate ids, and the shipped library loads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from listener.errors import ConfigError
from listener.paths import SHIPPED_RULES
from listener.rules import load_rules
from listener.rules.schema import render

GOOD = """\
rules:
  - id: burst
    kind: threshold
    window: 30m
    conditions: ["count >= 5"]
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def problems(paths) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_rules(paths)
    return [str(p) for p in info.value.problems]


def test_good_file_loads(tmp_path):
    ruleset = load_rules([write(tmp_path, "r.yaml", GOOD)])
    assert [r.id for r in ruleset.rules] == ["burst"]
    assert ruleset.rules[0].window == 1800


def test_unknown_key_names_line_column_and_suggests(tmp_path):
    path = write(tmp_path, "r.yaml", GOOD.replace("window: 30m", "windw: 30m"))
    found = problems([path])
    assert f"{path}:4:5: unknown key 'windw', did you mean 'window'?" in found


def test_bad_value_names_its_position(tmp_path):
    path = write(tmp_path, "r.yaml", GOOD.replace("30m", "thirty minutes"))
    (found,) = [p for p in problems([path]) if "duration" in p]
    assert found.startswith(f"{path}:4:13: ")


def test_bad_condition_suggests_metric(tmp_path):
    path = write(tmp_path, "r.yaml", GOOD.replace("count >= 5", "cuont >= 5"))
    (found,) = problems([path])
    assert "did you mean 'count'" in found and found.startswith(f"{path}:5:")


def test_unknown_template_field(tmp_path):
    path = write(tmp_path, "r.yaml", GOOD + "    message: '{cnt} posts'\n")
    (found,) = problems([path])
    assert "unknown template field {cnt}" in found and "did you mean {count}" in found
    assert found.startswith(f"{path}:6:")


def test_yaml_syntax_error_is_located(tmp_path):
    path = write(tmp_path, "r.yaml", "rules:\n  - id: [unclosed\n")
    (found,) = problems([path])
    assert found.startswith(f"{path}:") and "YAML syntax" in found


def test_duplicate_ids_across_files(tmp_path):
    a = write(tmp_path, "a.yaml", GOOD)
    write(tmp_path, "b.yaml", GOOD)
    (found,) = problems([tmp_path])
    assert "duplicate rule id 'burst'" in found and str(a) in found


def test_every_problem_in_every_file_is_reported(tmp_path):
    write(tmp_path, "a.yaml", GOOD.replace("kind: threshold", "kind: thresh"))
    write(tmp_path, "b.yaml", GOOD.replace("burst", "Bad Id"))
    assert len(problems([tmp_path])) == 2


def test_shipped_library_loads():
    ruleset = load_rules([SHIPPED_RULES])
    assert {"backlash-on-post", "person-in-crisis", "crime-tip"} <= {r.id for r in ruleset.rules}


def test_shipped_schema_is_generated_from_the_models():
    shipped = (SHIPPED_RULES / "rule.schema.json").read_text()
    assert json.loads(shipped) == json.loads(render()), "run: python -m listener.rules.schema > rules/rule.schema.json"
