"""The engine forgets groups whose window has emptied, so its memory follows the window, not the stream."""

from __future__ import annotations

from listener.rules import Engine
from listener.rules.model import ThresholdRule


def per_author(**overrides: object) -> ThresholdRule:
    spec: dict[str, object] = {"id": "noisy-author", "kind": "threshold", "window": "10m",
                               "conditions": ["count >= 3"], "group_by": ["author"]}
    spec.update(overrides)
    return ThresholdRule.model_validate(spec)


def groups_held(engine: Engine) -> int:
    return sum(len(rt.windows()) for rt in engine._runtimes)  # whole groups and small ones


def test_one_off_authors_leave_no_state_once_their_window_has_passed(make_mention):
    engine = Engine([per_author()])
    # 500 people who each write once, a second apart: one group each while the window holds them.
    engine.process([make_mention(at_s=i, author=f"person{i}") for i in range(500)])
    assert groups_held(engine) == 500
    # The window of the last one ends at 499 + 600 s: every group has emptied by then.
    start = make_mention(at_s=0).ts
    assert engine.advance(start + 499 + 600) == []
    assert groups_held(engine) == 0


def test_a_group_whose_window_empties_still_resolves_and_is_then_forgotten(make_mention):
    engine = Engine([per_author(cooldown="0s")])
    fired = engine.process([make_mention(at_s=at, author="angry") for at in (0, 10, 20)])
    assert [a.status for a in fired] == ["firing"]
    resolved = engine.advance(fired[0].fired_at_ts + 600)
    assert [a.status for a in resolved] == ["resolved"]
    assert engine.advance(fired[0].fired_at_ts + 3600) == []
    assert groups_held(engine) == 0


def test_a_draining_group_that_is_written_to_again_counts_what_is_still_in_its_window(make_mention):
    engine = Engine([per_author()])
    start = make_mention(at_s=0).ts
    # "slow" writes twice, then others pass by, so that sweeps run while slow's window drains.
    engine.process([make_mention(at_s=0, author="slow"), make_mention(at_s=100, author="slow")])
    for at in range(200, 640, 20):
        assert engine.process([make_mention(at_s=at, author=f"passer{at}")]) == []
    # At 650 the 10-minute window (50, 650] holds slow's posts at 100, 590 and 650: three.
    assert engine.process([make_mention(at_s=590, author="slow")]) == []
    fired = engine.process([make_mention(at_s=650, author="slow")])
    assert [(a.status, a.group_key, a.fired_at_ts - start, a.metrics["count"]) for a in fired] == \
        [("firing", "author=slow", 650, 3)]
    # The passers-by drained long ago and are forgotten; slow stays while its episode is open.
    engine.advance(start + 1300)
    assert {key for rt in engine._runtimes for key in rt.windows()} == {"author=slow"}


def test_a_group_is_forgotten_once_the_cooldown_after_its_episode_has_run_out(make_mention):
    from listener.rules.model import MatchRule

    crisis = MatchRule.model_validate({"id": "crisis", "kind": "match", "match": {"any": ["help"]},
                                       "group_by": ["author"], "resolve_after": "10m", "cooldown": "2h"})
    engine = Engine([per_author(cooldown="2h", resolve_after="0s"), crisis])
    fired = engine.process([make_mention("help", at_s=at, author="angry") for at in (0, 10, 20)])
    assert sorted(a.rule for a in fired if a.status == "firing") == ["crisis", "noisy-author"]
    start = fired[0].fired_at_ts
    resolved = engine.advance(start + 1800)
    assert sorted(a.rule for a in resolved if a.status == "resolved") == ["crisis", "noisy-author"]
    assert groups_held(engine) == 2  # still cooling down: a new burst within 2 h would not re-alert
    assert engine.advance(start + 2 * 3600 + 60) == []
    assert groups_held(engine) == 0
