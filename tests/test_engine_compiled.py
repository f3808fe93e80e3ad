"""The engine's compiled tests decide exactly as the plain definitions: the speed work changes no verdict."""

from __future__ import annotations

import random
from typing import Any

import pytest
from pydantic import TypeAdapter

from listener.rules import Engine
from listener.rules.model import Rule
from listener.rules.runtime import cannot_rise, may_hold, verdict


RULE = TypeAdapter(Rule)
BASE = {"cooldown": "10m", "resolve_after": "5m", "group_by": ["watch"]}

RULES: list[dict[str, Any]] = [
    {"kind": "threshold", "window": "30m", "conditions": ["count >= 12", "share_negative >= 0.5"]},
    {"kind": "threshold", "window": "20m", "conditions": ["mean_compound <= -0.2", "unique_authors > 3"],
     "combine": "any"},
    {"kind": "threshold", "window": "1h", "conditions": ["share_neutral < 0.3", "share_positive != 0.5",
                                                        "count > 5"]},
    {"kind": "threshold", "window": "45m", "flag": {"sentiment": "negative"},
     "conditions": ["flagged >= 6", "share_flagged >= 0.5"]},
    {"kind": "threshold", "window": "15m", "conditions": ["count <= 2"]},
    {"kind": "spike", "window": "30m", "baseline": {"type": "trailing", "period": "6h"}, "factor": 2,
     "min_count": 8},
    {"kind": "spike", "window": "1h", "baseline": {"type": "seasonal", "weeks": 2, "min_weeks": 1},
     "factor": 1.5, "min_count": 5, "min_mads": 1},
    {"kind": "sentiment_shift", "window": "1h", "baseline": {"type": "trailing", "period": "6h"}, "drop": 0.2,
     "min_count": 6, "min_baseline_count": 20},
]


@pytest.mark.parametrize("spec", RULES, ids=[f"{r['kind']}-{i}" for i, r in enumerate(RULES)])
def test_compiled_tests_agree_with_the_definitions(make_mention, spec):
    rng = random.Random(11)
    engine = Engine([RULE.validate_python({"id": "r", **BASE, **spec})])
    rt = engine.runtime("r")
    assert rt is not None
    t = 0.0
    checked = trues = 0
    for _ in range(2500):
        t += rng.expovariate(1 / 90) if rng.random() < 0.9 else rng.expovariate(1 / 3000)
        late = rng.random() < 0.05
        mention = make_mention(at_s=t - (rng.random() * 1800 if late else 0), watch=rng.choice("ab"),
                               author=f"u{rng.randrange(8)}", compound=rng.choice([-0.8, -0.3, 0.0, 0.02, 0.4, 0.9]))
        engine.process([mention])
        for state in rt.groups.values():
            now, first = engine.now_ts, engine.first_ts
            assert rt.cannot_rise(state) == cannot_rise(rt, state)
            before = (rt.unready, rt.unready_reason)
            fast = rt.holds_now(state, now, first)
            fast_unready = (rt.unready, rt.unready_reason)
            rt.unready, rt.unready_reason = before
            plain = may_hold(rt, state, now, first) and verdict(rt, state, now, first)[0]
            assert fast == plain
            trues += fast
            assert fast_unready == (rt.unready, rt.unready_reason)
            checked += 1
    assert checked > 1000
    assert trues > 0  # the condition held now and then, so both answers were exercised
    if spec["kind"] != "threshold":
        assert rt.unready > 0  # and so was the bookkeeping of evaluations that lacked history
