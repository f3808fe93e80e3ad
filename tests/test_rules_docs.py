"""The rule author's guide cannot drift: every rule field of every kind and every template field is documented."""

from __future__ import annotations

import re

import pydantic

from listener.paths import SHIPPED_RULES
from listener.rules.model import KINDS, Baseline, Escalation, Match
from listener.rules.template import FIELDS
from listener.rules.testing import Checkpoint, ExpectedAlert, MentionInput, PollInput, RuleTest, RuleTestFile

GUIDE = SHIPPED_RULES / "README.md"


def documented() -> set[str]:
    return set(re.findall(r"`([a-z_]+)`", GUIDE.read_text()))


def model_fields(*models: type[pydantic.BaseModel]) -> set[str]:
    return {info.alias or name for m in models for name, info in m.model_fields.items()}


def test_every_rule_field_of_every_kind_is_documented():
    missing = model_fields(*KINDS, Match, Baseline, Escalation) - documented()
    assert not missing, f"document these rule fields in rules/README.md: {sorted(missing)}"


def test_every_kind_and_metric_is_documented():
    from listener.rules.model import METRICS

    kinds = {m.model_fields["kind"].default for m in KINDS}
    missing = (kinds | set(METRICS)) - documented()
    assert not missing, f"document these in rules/README.md: {sorted(missing)}"


def test_every_template_field_is_documented():
    text = GUIDE.read_text()
    missing = [name for name in FIELDS if f"{{{name}}}" not in text]
    assert not missing, f"document these template fields in rules/README.md: {missing}"


def test_rule_test_file_fields_are_documented():
    missing = model_fields(RuleTestFile, RuleTest, MentionInput, PollInput, Checkpoint, ExpectedAlert) - documented()
    assert not missing, f"document these rule-test fields in rules/README.md: {sorted(missing)}"


def test_every_shipped_rule_is_in_the_library_table():
    from listener.rules import load_rules

    text = GUIDE.read_text()
    missing = [r.id for r in load_rules([SHIPPED_RULES]).rules if f"`{r.id}`" not in text]
    assert not missing, f"add these rules to the library table in rules/README.md: {missing}"


def test_shipped_rule_files_reference_the_schema():
    for path in SHIPPED_RULES.glob("*.yaml"):
        assert path.read_text().startswith("# yaml-language-server: $schema=./rule.schema.json"), path
