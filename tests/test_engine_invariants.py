"""What the engine promises whatever happens around it: a restart, a reload, other batch sizes, a
ticking clock or other rules beside it change no alert, to the last digit."""

from __future__ import annotations

import math
import random
from typing import Any

import pytest

from engine_cases import BASE, RESTART_RULES, RULE, moody_stream
from listener.rules import Engine


@pytest.mark.parametrize("spec", RESTART_RULES, ids=[f"{r['kind']}-{i}" for i, r in enumerate(RESTART_RULES)])
def test_a_restart_anywhere_sends_what_an_unbroken_run_sends(make_mention, spec):
    """Restarting (snapshot, then a new engine: restore() and warm() from the stored mentions, as
    Pipeline.resume does) decides as running on would: windows refilled one mention at a time must
    not leave a baseline remembered from part of its history."""
    from listener.rules.runtime import baseline

    rule = RULE.validate_python({"id": "r", **BASE, **spec})
    stream = sorted(moody_stream(make_mention, seed=3), key=lambda m: m.ts)
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
            if remembered is not None and state.base_bucket >= 0:
                state.base_bucket = -1  # forget it: computed afresh, it must be what was remembered
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
    stream = sorted(moody_stream(make_mention, seed=4), key=lambda m: m.ts)
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
    stream = moody_stream(make_mention, seed=5)
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
    stream = sorted(moody_stream(make_mention, seed=6), key=lambda m: m.ts)
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
    stream = moody_stream(make_mention, seed=7)
    together = Engine(rules)
    sent = [a.to_payload() for start in range(0, len(stream), 11) for a in together.process(stream[start : start + 11])]
    sent += [a.to_payload() for a in together.advance(max(m.ts for m in stream) + 86400)]
    for rule in rules:
        alone = Engine([rule])
        own = [a.to_payload() for start in range(0, len(stream), 11) for a in alone.process(stream[start : start + 11])]
        own += [a.to_payload() for a in alone.advance(max(m.ts for m in stream) + 86400)]
        assert own, rule.id
        assert [a for a in sent if a["rule"] == rule.id] == own, rule.id
