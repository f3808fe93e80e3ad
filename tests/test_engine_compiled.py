"""The engine's compiled tests decide exactly as the plain definitions: the speed work changes no verdict."""

from __future__ import annotations

import math
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


# Rules whose verdict can turn true as mentions leave a window, for every metric and direction.
DRAIN_RULES: list[dict[str, Any]] = RULES + [
    {"kind": "threshold", "window": "30m", "conditions": ["count >= 5", "share_positive >= 0.6"]},
    {"kind": "threshold", "window": "30m", "conditions": ["count > 4", "share_negative <= 0.2"]},
    {"kind": "threshold", "window": "40m", "conditions": ["count >= 4", "mean_compound >= 0.3"]},
    {"kind": "threshold", "window": "40m", "conditions": ["unique_authors <= 2", "count >= 3"]},
    {"kind": "threshold", "window": "1h", "conditions": ["share_neutral >= 0.5", "mean_compound < -0.1"],
     "combine": "any"},
    {"kind": "sentiment_shift", "window": "30m", "baseline": {"type": "trailing", "period": "3h"}, "drop": 0.1,
     "min_count": 4, "min_baseline_count": 10},
]


def _moody_stream(make_mention, seed: int) -> list[Any]:
    """Mentions in moods (mostly negative, mostly positive, mixed, neutral) with quiet gaps between,
    5 % of them late: windows fill with one mood and drain into another."""
    rng = random.Random(seed)
    moods = [[-0.8, -0.6, -0.3, 0.4], [0.7, 0.5, 0.9, -0.2], [-0.7, 0.0, 0.6, 0.02], [0.0, 0.01, -0.02, 0.3]]
    out, t = [], 0.0
    for _ in range(60):
        mood = rng.choice(moods)
        for _ in range(rng.randrange(3, 30)):
            t += rng.expovariate(1 / 60)
            late = rng.random() < 0.05
            out.append(make_mention(at_s=t - (rng.random() * 900 if late else 0), watch=rng.choice("ab"),
                                    author=f"u{rng.randrange(6)}", compound=rng.choice(mood)))
        t += rng.expovariate(1 / 1500)  # a quiet gap: the windows drain
    return out


@pytest.mark.parametrize("spec", DRAIN_RULES, ids=[f"{r['kind']}-{i}" for i, r in enumerate(DRAIN_RULES)])
def test_skipping_departures_that_cannot_make_a_rule_hold_changes_no_alert(make_mention, spec):
    """A group with nothing open is looked at only at the first departure that could make its rule
    hold (drains.py); an engine that looks at every departure must send exactly the same alerts."""
    rule = RULE.validate_python({"id": "r", **BASE, **spec})
    stream = _moody_stream(make_mention, seed=len(str(spec)))
    fast, every = Engine([rule]), Engine([rule])
    every.runtime("r").first_look = None  # type: ignore[union-attr]
    out: dict[str, list[Any]] = {"fast": [], "every": []}
    for engine, name in ((fast, "fast"), (every, "every")):
        for start in range(0, len(stream), 7):
            batch = stream[start : start + 7]
            out[name] += engine.process(batch)
            out[name] += engine.advance(max(m.ts for m in batch) + 5)
        out[name] += engine.advance(stream[-1].ts + 86400)
    assert [a.to_payload() for a in out["fast"]] == [a.to_payload() for a in out["every"]]
    assert fast.history_note("r") == every.history_note("r")
    arrived = {m.ts for m in stream}
    drained = [a for a in out["every"] if a.status == "firing" and a.fired_at_ts not in arrived]
    if spec.get("baseline", {}).get("type") != "seasonal":  # (the stream is shorter than its week of history)
        assert drained, "no alert fired as mentions left a window: the skipping was not exercised"


@pytest.mark.parametrize("text", [f"{metric} {op} {bound}" for metric, bounds in [
    ("count", [3, 8]), ("unique_authors", [2, 4]), ("flagged", [2, 5]), ("share_negative", [0.25, 0.5, 0.75]),
    ("share_positive", [0.2, 0.5]), ("share_neutral", [0.4]), ("share_flagged", [0.5]),
    ("mean_compound", [-0.3, 0.0, 0.25])] for bound in bounds for op in (">=", "<=", ">", "<")])
def test_a_departure_bound_is_never_above_the_departures_a_condition_needs(make_mention, text):
    """`condition_bound`: the oldest k mentions leave; whenever the condition holds after that, k is
    at least the bound. Windows of every mix, compounds on a grid so that shares and means land
    exactly on the bounds."""
    from listener.rules.drains import condition_bound
    from listener.rules.model import parse_condition
    from listener.rules.state import GroupState

    condition = parse_condition(text)
    bound = condition_bound(condition)
    rng = random.Random(text)
    orders = [  # the oldest leave first: each order puts other mentions first, to reach the best case
        lambda c, f, a: c, lambda c, f, a: -c, lambda c, f, a: -abs(c), lambda c, f, a: abs(c),
        lambda c, f, a: f, lambda c, f, a: not f, lambda c, f, a: a,
    ]
    close = 0
    for _ in range(200):
        mix = [(rng.choice([-1.0, -0.5, -0.25, 0.0, 0.25, 0.5, 1.0]), rng.random() < 0.4,
                f"u{rng.randrange(6)}") for _ in range(rng.randrange(1, 12))]
        for order in orders:
            state = GroupState({})
            for i, (c, f, a) in enumerate(sorted(mix, key=lambda x: order(*x))):
                state.add(make_mention(at_s=i, author=a, compound=c), f)
            said = bound(state)
            least = math.floor(said) if math.isfinite(said) else said  # as the engine uses it
            for k in range(len(state.window) + 1):
                if condition.holds(state.value(condition.metric)):
                    assert k >= least, f"held after {k} departures, bound said {said}"
                    close += 0 < k <= least + 1
                    break
                if state.window:
                    state.evict(state.window[0].ts)
    assert close or condition.op in (">=", ">") and condition.metric in ("count", "unique_authors", "flagged"), \
        "the bound was never within one departure of what was needed: it would pass if it were always 0"


def test_windows_that_do_not_keep_an_author_count_report_the_same_number(make_mention):
    """Rules that test no unique_authors keep no running count; their alerts count when they need it."""
    from listener.rules.state import GroupState

    rng = random.Random(5)
    kept, counted = GroupState({}), GroupState({}, authors=None)
    for i in range(400):
        m = make_mention(at_s=i * 10 - (rng.random() * 300 if rng.random() < 0.1 else 0),
                         author=rng.choice(["", "a", "b", "c", "d", f"u{i}"]))
        for state in (kept, counted):
            state.add(m)
            state.evict(i * 10 - 600)
        assert counted.unique_authors() == kept.unique_authors() == len(kept.authors or {})
        assert counted.metrics(False) == kept.metrics(False)
    engine = Engine([RULE.validate_python({"id": "r", **BASE, "kind": "threshold", "window": "10m",
                                           "conditions": ["count >= 3"]})])
    engine.process([make_mention(at_s=0, watch="w", author="a")])
    assert engine.runtime("r").groups["watch=w"].authors is None  # type: ignore[union-attr]


def test_windows_refilled_before_the_clock_is_set_are_timed_to_their_next_departure(make_mention):
    """warm() may run before any clock (a store with mentions but no saved state): baselines cannot
    be asked at minus infinity, so such groups look at their next departure, as before."""
    specs = [r for r in DRAIN_RULES if r["kind"] in ("spike", "sentiment_shift")]
    rules = [RULE.validate_python({"id": f"r{i}", **BASE, **spec}) for i, spec in enumerate(specs)]
    engine = Engine(rules)
    engine.warm([make_mention(at_s=i * 30, watch="w", compound=-0.5) for i in range(40)])
    for rule in rules:
        state = engine.runtime(rule.id).groups["watch=w"]  # type: ignore[union-attr]
        assert state.timer_due == state.window[0].ts + rule.window  # type: ignore[attr-defined]


RESTART_RULES = [r for r in DRAIN_RULES if r.get("baseline", {}).get("type") != "seasonal"] + [
    {"kind": "match", "match": {"sentiment": "negative"}, "cooldown": "20m", "resolve_after": "30m"},
    {"kind": "threshold", "window": "30m", "conditions": ["count >= 6"],
     "escalate": [{"severity": "high", "conditions": ["count >= 12"]}], "cooldown": "1h", "resolve_after": "10m"},
]


@pytest.mark.parametrize("spec", RESTART_RULES, ids=[f"{r['kind']}-{i}" for i, r in enumerate(RESTART_RULES)])
def test_a_restart_anywhere_sends_what_an_unbroken_run_sends(make_mention, spec):
    """Restarting (snapshot, then a new engine: restore() and warm() from the stored mentions, as
    Pipeline.resume does) decides as running on would: windows refilled one mention at a time must
    not leave a baseline remembered from part of its history."""
    from listener.rules.runtime import baseline

    rule = RULE.validate_python({"id": "r", **BASE, **spec})
    stream = sorted(_moody_stream(make_mention, seed=3), key=lambda m: m.ts)
    batches = [stream[i : i + 9] for i in range(0, len(stream), 9)]

    def decisions(alerts: list[Any]) -> list[dict[str, Any]]:
        # Whole payloads, metrics to the last digit: window and baseline sums are exact integers,
        # so refilling them in another order than they were built gives the same means.
        return [a.to_payload() for a in alerts]

    unbroken = Engine([rule])
    expected = [decisions(unbroken.process(b)) for b in batches]
    assert any(expected), "the stream never made this rule fire: the test would prove nothing"
    for cut in range(len(batches) // 6, len(batches), len(batches) // 6):
        before = Engine([rule])
        for b in batches[:cut]:
            before.process(b)
        restarted = Engine([rule])
        restarted.restore(before.snapshot())
        seen = [m for b in batches[:cut] for m in b]
        restarted.warm([m for m in seen if m.ts > restarted.now_ts - restarted.max_window_s()])
        rt = restarted.runtime("r")
        assert rt is not None
        for state in rt.groups.values():
            remembered = state.base_value
            if remembered is not None and state.base_key is not None:
                state.base_key = None
                assert baseline(rt, state, restarted.now_ts, restarted.first_ts) == remembered
        got = [decisions(restarted.process(b)) for b in batches[cut:]]
        assert got == expected[cut:], f"restart after batch {cut}"


def test_a_windows_mean_does_not_depend_on_what_came_and_went_before(make_mention):
    """A window built up and drained reports the same mean as one refilled with what is left (as a
    restarted daemon refills it): with running float sums about 1 window in 100 differed in the
    4th decimal, enough to flip a verdict at a bound; the sums are exact integers now."""
    from listener.rules.state import GroupState

    rng = random.Random(1)
    compounds = [round(rng.uniform(-1, 1), 4) for _ in range(500)]
    for _ in range(2000):
        running = GroupState({})
        made = [make_mention(at_s=i, compound=rng.choice(compounds)) for i in range(rng.randrange(10, 60))]
        for m in made:
            running.add(m)
        running.evict(made[rng.randrange(1, len(made) - 5)].ts)
        refilled = GroupState({})
        for m in running.window:
            refilled.add(m)
        assert running.metrics(False) == refilled.metrics(False)


@pytest.mark.parametrize("spec", RESTART_RULES, ids=[f"{r['kind']}-{i}" for i, r in enumerate(RESTART_RULES)])
def test_a_reload_of_unchanged_rules_anywhere_changes_no_alert(make_mention, spec):
    """Hot reload keeps an unchanged rule's windows, baselines, timers and episodes: reloading the
    same rule (parsed anew, its description edited) at any point sends what running on sends."""
    rule = RULE.validate_python({"id": "r", **BASE, **spec})
    edited = RULE.validate_python({"id": "r", **BASE, **spec, "description": "reworded"})
    stream = sorted(_moody_stream(make_mention, seed=4), key=lambda m: m.ts)
    batches = [stream[i : i + 9] for i in range(0, len(stream), 9)]
    unbroken = Engine([rule])
    expected = [[a.to_payload() for a in unbroken.process(b)] for b in batches]
    assert any(expected), "the stream never made this rule fire: the test would prove nothing"
    for cut in range(len(batches) // 5, len(batches), len(batches) // 5):
        engine = Engine([rule])
        got = [[a.to_payload() for a in engine.process(b)] for b in batches[:cut]]
        assert engine.replace_rules([edited]) == []
        got += [[a.to_payload() for a in engine.process(b)] for b in batches[cut:]]
        strip = [[{k: v for k, v in a.items() if k != "description"} for a in batch] for batch in got]
        assert strip == [[{k: v for k, v in a.items() if k != "description"} for a in batch] for batch in expected]


@pytest.mark.parametrize("spec", RESTART_RULES, ids=[f"{r['kind']}-{i}" for i, r in enumerate(RESTART_RULES)])
def test_how_a_stream_is_cut_into_batches_changes_no_alert(make_mention, spec):
    """The same mentions in the same order, one at a time or fifty at a time (late ones included):
    the same alerts, in the same order."""
    rule = RULE.validate_python({"id": "r", **BASE, **spec})
    stream = _moody_stream(make_mention, seed=5)
    runs = []
    for size in (1, 50):
        engine = Engine([rule])
        runs.append([a.to_payload() for start in range(0, len(stream), size)
                     for a in engine.process(stream[start : start + size])])
    assert runs[0], "the stream never made this rule fire: the test would prove nothing"
    assert runs[0] == runs[1]


@pytest.mark.parametrize("spec", RESTART_RULES, ids=[f"{r['kind']}-{i}" for i, r in enumerate(RESTART_RULES)])
def test_a_clock_that_ticks_between_mentions_changes_no_alert(make_mention, spec):
    """The daemon ticks the clock every few seconds; a replay does not. Timers run at their own due
    times either way, so both send the same alerts, stamped the same."""
    rule = RULE.validate_python({"id": "r", **BASE, **spec})
    stream = sorted(_moody_stream(make_mention, seed=6), key=lambda m: m.ts)
    runs = []
    for tick_s in (None, 17.0):
        engine = Engine([rule])
        out = []
        for m in stream:
            if tick_s is not None and engine.now_ts != -math.inf:
                t = engine.now_ts
                while t + tick_s < m.ts:
                    t += tick_s
                    out += engine.advance(t)
            out += engine.process([m])
        out += engine.advance(stream[-1].ts + 86400)
        runs.append([a.to_payload() for a in out])
    assert runs[0], "the stream never made this rule fire: the test would prove nothing"
    assert runs[0] == runs[1]


def test_rules_run_together_decide_as_each_alone(make_mention):
    """Rules share an engine (its clock, timer heap, sweeps, regex bank) but nothing else: each
    sends the same alerts beside the others as alone."""
    rules = [RULE.validate_python({"id": f"r{i}", **BASE, **spec}) for i, spec in enumerate(RESTART_RULES)]
    stream = _moody_stream(make_mention, seed=7)
    together = Engine(rules)
    sent = [a.to_payload() for start in range(0, len(stream), 11) for a in together.process(stream[start : start + 11])]
    sent += [a.to_payload() for a in together.advance(max(m.ts for m in stream) + 86400)]
    for rule in rules:
        alone = Engine([rule])
        own = [a.to_payload() for start in range(0, len(stream), 11) for a in alone.process(stream[start : start + 11])]
        own += [a.to_payload() for a in alone.advance(max(m.ts for m in stream) + 86400)]
        assert own, rule.id
        assert [a for a in sent if a["rule"] == rule.id] == own, rule.id
