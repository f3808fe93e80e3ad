"""The engine's compiled tests decide exactly as the plain definitions: the speed work changes no verdict."""

from __future__ import annotations

import math
import random
from typing import Any

import pytest

from engine_cases import BASE, DRAIN_RULES, RESTART_RULES, RULE, RULES, moody_stream
from listener.rules import Engine
from listener.rules.runtime import cannot_rise, may_hold, verdict


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
        now, first = engine.now_ts, engine.first_ts
        # A small group (a threshold rule's group with fewer mentions than it can fire on) is only
        # its mentions: as a whole group it must be one that cannot hold.
        small = [(rt.state_of(w, {}, now), True) for w in (rt.small or {}).values()]
        for state, is_small in [*((state, False) for state in rt.groups.values()), *small]:
            assert rt.cannot_rise(state) == cannot_rise(rt, state)
            before = (rt.unready, rt.unready_reason)
            fast = rt.holds_now(state, now, first)
            fast_unready = (rt.unready, rt.unready_reason)
            rt.unready, rt.unready_reason = before
            plain = may_hold(rt, state, now, first) and verdict(rt, state, now, first)[0]
            assert fast == plain
            assert not (is_small and (fast or not cannot_rise(rt, state)))
            trues += fast
            assert fast_unready == (rt.unready, rt.unready_reason)
            checked += 1
    assert checked > 1000
    assert trues > 0  # the condition held now and then, so both answers were exercised
    if spec["kind"] != "threshold":
        assert rt.unready > 0  # and so was the bookkeeping of evaluations that lacked history


@pytest.mark.parametrize("spec", DRAIN_RULES, ids=[f"{r['kind']}-{i}" for i, r in enumerate(DRAIN_RULES)])
def test_skipping_departures_that_cannot_make_a_rule_hold_changes_no_alert(make_mention, spec):
    """A group with nothing open is looked at only at the first departure that could make its rule
    hold (drains.py); an engine that looks at every departure must send exactly the same alerts."""
    rule = RULE.validate_python({"id": "r", **BASE, **spec})
    stream = moody_stream(make_mention, seed=len(str(spec)))
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


BASELINE_RULES = [r for r in DRAIN_RULES if r["kind"] in ("spike", "sentiment_shift")] + [
    {"kind": "spike", "window": "20m", "baseline": {"type": "trailing", "period": "2h"}, "factor": 1.2,
     "min_count": 3, "flag": {"sentiment": "negative"}},
    {"kind": "sentiment_shift", "window": "20m", "baseline": {"type": "trailing", "period": "2h"}, "drop": 0.05,
     "min_count": 3, "min_baseline_count": 5},
]


@pytest.mark.parametrize("spec", BASELINE_RULES, ids=[f"{r['kind']}-{i}" for i, r in enumerate(BASELINE_RULES)])
def test_the_quiet_path_of_baseline_rules_changes_no_alert_timer_or_count(make_mention, spec):
    """A mention into a spike or shift group with nothing open is decided in one step when the rule
    does not hold and the group's timer stands (quiet.py); an engine that asks in full every time must
    send the same alerts, hold the same timers and queue, and count the same lack of history."""
    rule = RULE.validate_python({"id": "r", **BASE, **spec})
    stream = moody_stream(make_mention, seed=len(str(spec)))
    quick, full = Engine([rule]), Engine([rule])
    full.runtime("r").quiet = None  # type: ignore[union-attr]
    quiet = quick.runtime("r").quiet  # type: ignore[union-attr]
    assert quiet is not None
    answers = {True: 0, False: 0}

    def counted(state: Any, now: float, first_ts: float | None) -> bool:
        answer = quiet(state, now, first_ts)
        answers[answer] += 1
        return answer

    quick.runtime("r").quiet = counted  # type: ignore[union-attr]
    out: dict[str, list[Any]] = {"quick": [], "full": []}

    def state_of(engine: Engine) -> Any:
        rt = engine.runtime("r")
        assert rt is not None
        live = sorted(t for t in engine._timers if (s := rt.groups.get(t[2])) is not None and s.timer_due == t[0])
        return (live, [(key, s.draining, len(s.window), s.n_flag, s.sum_e4) for key, s in rt.groups.items()],
                [(end, key) for end, key, _ in rt.draining], rt.unready, rt.unready_reason, engine.snapshot())

    for start in range(0, len(stream), 7):
        batch = stream[start : start + 7]
        for engine, name in ((quick, "quick"), (full, "full")):
            out[name] += engine.process(batch)
        assert state_of(quick) == state_of(full)
        for engine, name in ((quick, "quick"), (full, "full")):
            out[name] += engine.advance(max(m.ts for m in batch) + 5)
    for engine, name in ((quick, "quick"), (full, "full")):
        out[name] += engine.advance(stream[-1].ts + 86400)
    assert [a.to_payload() for a in out["quick"]] == [a.to_payload() for a in out["full"]]
    assert quick.history_note("r") == full.history_note("r")
    if spec["baseline"]["type"] == "seasonal":  # (the stream is shorter than its week of history)
        assert full.history_note("r"), "it never lacked history: the test would prove nothing"
    else:
        assert any(a.status == "firing" for a in out["full"]), "the rule never fired: the test would prove nothing"
    assert answers[True] > 50 and answers[False] > 5, answers  # both ways were taken


SMALL_RULES = [r for r in RESTART_RULES if r["kind"] == "threshold"]  # (DRAIN_RULES and more)


@pytest.mark.parametrize("spec", SMALL_RULES, ids=[f"threshold-{i}" for i in range(len(SMALL_RULES))])
def test_keeping_groups_small_until_they_could_fire_changes_no_alert(make_mention, spec):
    """A threshold rule's group with fewer mentions than the rule can fire on is kept as only its
    mentions (RuleRuntime.small) and made whole when it reaches that many: an engine that makes
    every group whole from its first mention must send exactly the same alerts."""
    rule = RULE.validate_python({"id": "r", **BASE, **spec})
    stream = moody_stream(make_mention, seed=len(str(spec)))
    small, whole = Engine([rule]), Engine([rule])
    whole.runtime("r").small = None  # type: ignore[union-attr]
    out: dict[str, list[Any]] = {"small": [], "whole": []}
    seen_small = 0
    for engine, name in ((small, "small"), (whole, "whole")):
        for start in range(0, len(stream), 7):
            batch = stream[start : start + 7]
            out[name] += engine.process(batch)
            seen_small += len(engine.runtime("r").small or {})  # type: ignore[union-attr]
            out[name] += engine.advance(max(m.ts for m in batch) + 5)
        out[name] += engine.advance(stream[-1].ts + 86400)
    assert [a.to_payload() for a in out["small"]] == [a.to_payload() for a in out["whole"]]
    assert any(a.status == "firing" for a in out["whole"]), "the rule never fired: the test would prove nothing"
    if small.runtime("r").fires_from:  # type: ignore[union-attr]
        assert seen_small, "no group was ever small: the test would prove nothing"
    assert not small.runtime("r").small  # type: ignore[union-attr]  # forgotten once their window passed


def test_small_groups_per_author_with_sightings_and_a_restart_change_no_alert(make_mention):
    """As above, grouped by author and watch (most groups stay small, as with the shipped rules
    grouped by thread), with posts found again by a second watch (which count in that watch's
    groups), and a restart halfway (restore, then warm from the mentions seen)."""
    from dataclasses import replace

    fired = 0
    for spec in SMALL_RULES:
        rule = RULE.validate_python({"id": "r", **BASE, **spec, "group_by": ["author", "watch"]})
        moody = moody_stream(make_mention, seed=len(str(spec)))
        stream = [replace(m, author=f"u{i % 3}") for i, m in enumerate(moody)]  # three prolific authors
        half = len(stream) // 2

        def run(engine: Engine, part: list[Any]) -> list[Any]:
            out: list[Any] = []
            for start in range(0, len(part), 5):
                batch = part[start : start + 5]
                out += engine.process(batch)
                out += engine.process_sightings([(replace(m, watch="b"), [(m.watch, None)])
                                                 for m in batch[:2] if m.watch == "a"])
                out += engine.advance(max(m.ts for m in batch) + 5)
            return out

        payloads = {}
        for name in ("small", "whole"):
            engine = Engine([rule])
            if name == "whole":
                engine.runtime("r").small = None  # type: ignore[union-attr]
            out = run(engine, stream[:half])
            restarted = Engine([rule])
            if name == "whole":
                restarted.runtime("r").small = None  # type: ignore[union-attr]
            restarted.restore(engine.snapshot())
            restarted.warm([m for m in stream[:half] if m.ts > restarted.now_ts - restarted.max_window_s()])
            out += run(restarted, stream[half:]) + restarted.advance(stream[-1].ts + 86400)
            payloads[name] = [a.to_payload() for a in out]
        assert payloads["small"] == payloads["whole"], spec
        fired += any(p["status"] == "firing" for p in payloads["whole"])
    assert fired >= len(SMALL_RULES) // 2, "too few of the rules fired: the test would prove little"


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
    engine.process([make_mention(at_s=i, watch="w", author="a") for i in range(3)])
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


def test_a_text_rule_learns_its_rarest_need_and_decides_the_same(monkeypatch, make_mention):
    """A rule whose own regex (one of our handles) is in every mention, beside a rarer act: the
    engine counts on its first mentions which need rules out more, keeps it, and alerts exactly as
    an engine that never learnt."""
    from listener.rules import runtime
    from listener.rules.engine import Engine
    from listener.rules.model import Rule
    from pydantic import TypeAdapter

    monkeypatch.setattr(runtime, "NEED_SAMPLE", 40)
    rule = TypeAdapter(Rule).validate_python({
        "id": "handle-and-act", "kind": "match", "group_by": ["author"],
        "match": {"any_of": [{"regex": "@\\w*police", "any_of": [{"regex": "\\bburn (it|the station)\\b"},
                                                                  {"any": ["pay him a visit"]}]}]}})
    texts = ["@MetroPolice thanks for the help", "@MetroPolice where do I get a police check?",
             "@MetroPolice burn the station down", "@MetroPolice great work today"]
    mentions = [make_mention(texts[i % 4], author=f"a{i}", ts=1_000_000 + i) for i in range(200)]
    learning, fixed = Engine([rule]), Engine([rule])
    fixed.runtime("handle-and-act").need_samples = 0  # keeps the need chosen without a stream
    static = fixed.runtime("handle-and-act").need_regexes
    got = [a.group_key for a in learning.process(mentions)]
    assert got == [a.group_key for a in fixed.process(mentions)] and len(got) == 50
    learnt = learning.runtime("handle-and-act")
    assert learnt.need_samples == 0 and learnt.need_regexes != static
    ruled_out = sum(1 for m in mentions if learnt.need_regexes.isdisjoint(learnt.regex_hits(m.text)))
    assert ruled_out == 150  # every mention without the act, where the handle ruled out none


def test_shares_and_means_are_compared_as_alerts_show_them_rounded_to_four_places():
    """A share or mean is compared unrounded only where rounding cannot change the answer: on both
    sides of every bound, and where rounding does change it (14,999 of 25,000 is 0.6 as shown)."""
    from collections import deque

    from listener.rules.model import Condition
    from listener.rules.runtime import _condition_test
    from listener.rules.state import GroupState

    def state(n: int, k: int, compound_e4: int = 0) -> GroupState:
        s = GroupState(values={}, window=deque([None] * n))  # type: ignore[list-item]
        s.n_neg = s.n_pos = s.n_flag = k
        s.n_pos = min(k, n - k)
        s.sum_e4 = compound_e4
        return s

    cases = [state(n, k, rng_sum) for n in range(1, 41) for k in range(0, n + 1)
             for rng_sum in (-k * 3333, k * 7 - n)]
    cases += [state(25000, 14999), state(25000, 15001), state(30000, 17998, -17998 * 10000 // 3)]
    bounds = {round(s.n_neg / len(s.window), 4) for s in cases} | {0.6, 0.59995, 0.6001, -0.3, 0.0}
    checked = differs = 0
    for metric in ("share_negative", "share_positive", "share_neutral", "mean_compound", "share_flagged"):
        for op in (">=", ">", "<=", "<", "==", "!="):
            for bound in sorted(bounds):
                c = Condition(metric, op, bound)
                test = _condition_test(c)
                for s in cases:
                    expected = c.holds(s.value(metric))
                    assert test(s) == expected, (metric, op, bound, len(s.window), s.n_neg, s.sum_e4)
                    raw = {"share_negative": s.n_neg, "share_positive": s.n_pos, "share_flagged": s.n_flag,
                           "share_neutral": len(s.window) - s.n_neg - s.n_pos}.get(metric)
                    if raw is not None and expected != c.holds(raw / len(s.window)):
                        differs += 1  # a case where comparing unrounded would have answered otherwise
                    checked += 1
    assert checked > 100_000 and differs > 0
