"""The shipped rule library passes its own rule unit tests (rules/tests/*.test.yaml), one pytest case each."""

from __future__ import annotations

import pytest

from listener.paths import SHIPPED_RULES
from listener.rules.testing import RuleTestRunner, find_test_files

RUNNER = RuleTestRunner()
CASES = [
    pytest.param(path, index, id=f"{path.stem}:{test.name}")
    for path in find_test_files([SHIPPED_RULES / "tests"])
    for index, test in enumerate(RUNNER.load(path)[0].tests)
]


def test_every_shipped_rule_has_rule_tests():
    tested = set()
    for path in find_test_files([SHIPPED_RULES / "tests"]):
        spec, ruleset, _ = RUNNER.load(path)
        tested |= {e.rule for t in spec.tests for cp in t.expect for e in cp.alerts}
    from listener.rules import load_rules

    assert {r.id for r in load_rules([SHIPPED_RULES]).rules} <= tested


@pytest.mark.parametrize("path, index", CASES)
def test_shipped_rule_test(path, index):
    spec, ruleset, _ = RUNNER.load(path)
    failures = RUNNER.run_test(spec.tests[index], ruleset)
    assert not failures, "\n".join(failures)
