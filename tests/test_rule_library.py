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


def test_match_rules_rarely_fire_on_text_they_were_not_written_for():
    """VADER's human-rated corpora (tweets, movie and product reviews, editorials) are not about
    crisis, threats or tips: the shipped match rules must stay quiet on nearly all of them. Counted
    on the half that the shipped classifier was not trained on (the other half taught it ordinary text)."""
    from conftest import SHARED
    from listener.rules import load_rules
    from listener.rules.training import held_out

    bench_rules = _bench_rules()
    texts = bench_rules.vader_texts(SHARED / "data" / "vader")
    if texts is None:
        pytest.skip(f"VADER's corpora are not at {SHARED / 'data' / 'vader'} (set LISTENER_SHARED)")
    assert len(texts) > 20_000
    rules = load_rules([SHIPPED_RULES]).rules
    unseen = [t for t in texts if held_out(t, bench_rules.unseen_share(rules))]
    assert len(unseen) > 10_000
    fired = bench_rules.vader_false_alarms(bench_rules.single_post_rules(rules), unseen)
    # Measured when the classifier joined the term lists (before, on all 23,703 texts: 4, 0, 2):
    # hyperbole ("this film nearly provoked me to take my own life") and evenings ("i am going to
    # miss heroes tonight", "please perform this for me tonight"): about 1 in 1,000 ordinary texts.
    assert len(fired["person-in-crisis"]) <= 12, fired["person-in-crisis"]
    assert len(fired["threat-against-officers"]) <= 1, fired["threat-against-officers"]
    assert len(fired["crime-tip"]) <= 2, fired["crime-tip"]


# -- the evaluation sets (rules/eval/README.md): the library must not lose what it catches --------

EVAL = SHIPPED_RULES / "eval"

# (set, rule) -> (least recall, most false alarms), a little under and at what the library does now.
# Rounds 1-5 and 8-10 trained the classifier of rules/models/posts.json (1-5 were also used to write
# the term lists): their figures say only that those posts are covered. Rounds 6, 7 and 11 are held
# out: their figures are the honest ones (see rules/eval/README.md).
FLOORS = {
    ("round1", "person-in-crisis"): (0.97, 0), ("round1", "threat-against-officers"): (0.97, 0),
    ("round1", "crime-tip"): (0.97, 0),
    ("round2", "person-in-crisis"): (0.97, 0), ("round2", "threat-against-officers"): (0.97, 0),
    ("round2", "crime-tip"): (0.94, 0),
    ("round3", "person-in-crisis"): (0.97, 0), ("round3", "threat-against-officers"): (0.96, 0),
    ("round3", "crime-tip"): (0.97, 0),
    ("round4", "person-in-crisis"): (0.97, 0), ("round4", "threat-against-officers"): (0.96, 0),
    ("round4", "crime-tip"): (0.97, 1),
    ("round5", "person-in-crisis"): (0.97, 2), ("round5", "threat-against-officers"): (0.97, 0),
    ("round5", "crime-tip"): (0.96, 3),
    ("round6", "person-in-crisis"): (0.66, 5), ("round6", "threat-against-officers"): (0.50, 0),
    ("round6", "crime-tip"): (0.76, 2),
    ("round7", "person-in-crisis"): (0.63, 2), ("round7", "threat-against-officers"): (0.56, 0),
    ("round7", "crime-tip"): (0.72, 3),
    # Written by specialists: a crisis-line worker's hard negatives (recovery told in the past tense:
    # "I tried to kill myself in 2019") are the term lists' explicit phrases, which fire on them.
    ("round8", "person-in-crisis"): (0.97, 10), ("round8", "threat-against-officers"): (0.97, 0),
    ("round8", "crime-tip"): (0.97, 1),
    ("round9", "person-in-crisis"): (0.96, 0), ("round9", "threat-against-officers"): (0.97, 5),
    ("round9", "crime-tip"): (0.96, 2),
    ("round10", "person-in-crisis"): (0.97, 1), ("round10", "threat-against-officers"): (0.97, 0),
    ("round10", "crime-tip"): (0.97, 9),
    ("round11", "person-in-crisis"): (0.58, 7), ("round11", "threat-against-officers"): (0.34, 0),
    ("round11", "crime-tip"): (0.68, 0),
    ("background", "person-in-crisis"): (0.0, 2), ("background", "threat-against-officers"): (0.0, 0),
    ("background", "crime-tip"): (0.0, 1),
    # 400 short everyday posts ("sushi tonight? I'm buying"): used to choose the classifier's prior.
    ("short", "person-in-crisis"): (0.0, 0), ("short", "threat-against-officers"): (0.0, 0),
    ("short", "crime-tip"): (0.0, 0),
}


def _bench_rules():
    import importlib
    import sys

    from conftest import ROOT

    if str(ROOT / "bench") not in sys.path:
        sys.path.insert(0, str(ROOT / "bench"))
    return importlib.import_module("bench_rules")


@pytest.mark.parametrize("name", sorted({name for name, _ in FLOORS}))
def test_single_post_rules_keep_what_they_catch_on_the_labelled_posts(name):
    bench_rules = _bench_rules()
    from listener.rules import load_rules

    predicates = bench_rules.single_post_rules(load_rules([SHIPPED_RULES]).rules)
    scores = bench_rules.score_posts(predicates, bench_rules.read_posts(EVAL / "posts" / f"{name}.jsonl"))
    problems = []
    for rule, s in scores.items():
        least, most = FLOORS[(name, rule)]
        if s.positives and s.recall < least:
            problems.append(f"{rule}: recall {s.recall:.2f} < {least} (missed, e.g. {s.missed[:3]})")
        if s.false_alarms > most:
            problems.append(f"{rule}: {s.false_alarms} false alarms > {most} ({s.wrongly[:3]})")
    assert not problems, "\n".join(problems)


EXPECTED = _bench_rules().read_expected(EVAL / "scenarios" / "expected.yaml")


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_recordings_raise_the_wanted_alerts_on_time_and_nothing_else(name):
    """Each recording through the whole path (store, VADER, every shipped rule), as `listener replay`."""
    from listener.rules import load_rules

    outcome = _bench_rules().run_scenario(EVAL / "scenarios" / name, EXPECTED[name].get("want") or [],
                                          load_rules([SHIPPED_RULES]).rules)
    late = [w for w in outcome.wanted if not w["on_time"]]
    assert not late, f"missed or late: {late}"
    assert not outcome.false_alarms, f"false alarms: {outcome.false_alarms}"
