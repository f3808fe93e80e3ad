"""The pure rule engine: windows, groups, cooldowns, episodes. No I/O, no event loop."""

from __future__ import annotations

from typing import Any

from listener.rules import Engine
from listener.rules.model import MatchRule, ThresholdRule


def threshold(**overrides: Any) -> ThresholdRule:
    spec: dict[str, Any] = {
        "id": "burst", "kind": "threshold", "window": "10m", "conditions": ["count >= 3"],
        "cooldown": "0s", "group_by": ["thread"],
    }
    spec.update(overrides)
    return ThresholdRule.model_validate(spec)


def test_window_fires_when_count_reached_within_window(make_mention):
    engine = Engine([threshold()])
    alerts = []
    for i, at in enumerate((0, 120, 240)):
        alerts += engine.process([make_mention(at_s=at, thread="t1")])
        if i < 2:
            assert alerts == []
    assert [(a.rule, a.status, a.seq) for a in alerts] == [("burst", "firing", 1)]
    assert alerts[0].metrics["count"] == 3


def test_window_slides_old_mentions_do_not_count(make_mention):
    engine = Engine([threshold()])
    # Three mentions, but spread over more than the 10 minute window.
    alerts = engine.process([make_mention(at_s=at, thread="t1") for at in (0, 400, 800)])
    assert alerts == []


def test_window_evicts_and_episode_resolves_when_time_passes(make_mention):
    engine = Engine([threshold()])
    fired = engine.process([make_mention(at_s=at, thread="t1") for at in (0, 10, 20)])
    assert [a.status for a in fired] == ["firing"]
    # Nothing arrives; the clock moves on past the window: the first mention leaves at 600s.
    assert engine.advance(599 + fired[0].fired_at_ts - 20) == []
    resolved = engine.advance(fired[0].fired_at_ts + 600)
    assert [(a.status, a.seq, a.id) for a in resolved] == [("resolved", 2, fired[0].id)]
    assert resolved[0].metrics["count"] < 3


def test_groups_are_independent(make_mention):
    engine = Engine([threshold()])
    alerts = engine.process([
        make_mention(at_s=0, thread="a"), make_mention(at_s=1, thread="b"),
        make_mention(at_s=2, thread="a"), make_mention(at_s=3, thread="b"),
        make_mention(at_s=4, thread="a"),
    ])
    assert [a.group_key for a in alerts] == ["thread=a"]
    alerts = engine.process([make_mention(at_s=5, thread="b")])
    assert [a.group_key for a in alerts] == ["thread=b"]


def test_cooldown_suppresses_a_new_episode_then_lets_it_fire(make_mention):
    engine = Engine([threshold(cooldown="1h", window="5m")])
    first = engine.process([make_mention(at_s=at, thread="t") for at in (0, 1, 2)])
    assert [a.status for a in first] == ["firing"]
    # The window empties (resolved), then a new burst comes within the hour: quiet.
    resolved = engine.advance(first[0].fired_at_ts + 301)
    assert [a.status for a in resolved] == ["resolved"]
    again = engine.process([make_mention(at_s=at, thread="t") for at in (1000, 1001, 1002)])
    assert again == []
    # After the cooldown, a burst fires a new episode with a new id.
    later = engine.process([make_mention(at_s=at, thread="t") for at in (3700, 3701, 3702)])
    assert [a.status for a in later] == ["firing"]
    assert later[0].id != first[0].id


def test_share_and_mean_conditions_must_all_hold(make_mention):
    rule = threshold(conditions=["count >= 4", "share_negative >= 0.5", "mean_compound <= -0.2"])
    engine = Engine([rule])
    thanks = [make_mention(at_s=i, thread="p", compound=0.8) for i in range(10)]
    assert engine.process(thanks) == []
    engine2 = Engine([rule])
    angry = [make_mention(at_s=i, thread="p", compound=-0.7) for i in range(4)]
    fired = engine2.process(angry)
    assert len(fired) == 1
    assert {c["metric"]: c["met"] for c in fired[0].conditions} == {
        "count": True, "share_negative": True, "mean_compound": True}


def test_any_combination(make_mention):
    engine = Engine([threshold(conditions=["count >= 100", "share_negative >= 0.9"], combine="any")])
    fired = engine.process([make_mention(at_s=0, thread="p", compound=-0.9)])
    assert len(fired) == 1


def test_resolve_after_requires_condition_false_that_long(make_mention):
    engine = Engine([threshold(resolve_after="10m", window="5m")])
    fired = engine.process([make_mention(at_s=at, thread="t") for at in (0, 1, 2)])
    t = fired[0].fired_at_ts
    assert engine.advance(t + 301) == []  # false now, but not for 10 minutes yet
    # The condition holds again before the 10 minutes are up: the episode goes on.
    assert engine.process([make_mention(at_s=at, thread="t") for at in (400, 401, 402)]) == []
    done = engine.advance(t + 402 + 300 + 600 + 1)
    assert [(a.status, a.id) for a in done] == [("resolved", fired[0].id)]


def test_match_rule_fires_once_per_mention_without_group_by(make_mention):
    rule = MatchRule.model_validate({"id": "crisis", "kind": "match", "match": {"any": ["want to die"]},
                                     "cooldown": "0s"})
    engine = Engine([rule])
    alerts = engine.process([
        make_mention("I want to die", at_s=0), make_mention("nice day", at_s=1),
        make_mention("I WANT to die.", at_s=2),
    ])
    assert [a.seq for a in alerts] == [1, 1]
    assert len({a.id for a in alerts}) == 2
    assert alerts[0].samples[0].text == "I want to die"


def test_match_rule_grouped_updates_same_episode_then_resolves(make_mention):
    rule = MatchRule.model_validate({"id": "crisis", "kind": "match", "match": {"any": ["want to die"]},
                                     "group_by": ["author"], "cooldown": "0s", "resolve_after": "1h"})
    engine = Engine([rule])
    a = engine.process([make_mention("I want to die", at_s=0, author="p1")])
    b = engine.process([make_mention("I still want to die", at_s=60, author="p1")])
    assert (a[0].id, a[0].seq) == (b[0].id, 1) or (b[0].id, b[0].seq) == (a[0].id, 2)
    assert b[0].seq == 2 and b[0].metrics["count"] == 2
    resolved = engine.advance(b[0].fired_at_ts + 3600)
    assert [(r.status, r.id, r.seq) for r in resolved] == [("resolved", a[0].id, 3)]


def test_match_cooldown_batches_updates(make_mention):
    rule = MatchRule.model_validate({"id": "threat", "kind": "match", "match": {"any": ["hurt"]},
                                     "group_by": ["author"], "cooldown": "10m", "resolve_after": "1h"})
    engine = Engine([rule])
    first = engine.process([make_mention("I will hurt", at_s=0, author="x")])
    quiet = engine.process([make_mention("hurt", at_s=60, author="x"), make_mention("hurt", at_s=120, author="x")])
    assert len(first) == 1 and quiet == []
    update = engine.advance(first[0].fired_at_ts + 600)
    assert [(u.seq, u.metrics["count"]) for u in update] == [(2, 3)]


def test_same_input_same_alert_ids(make_mention):
    stream = [make_mention(at_s=at, thread="t") for at in (0, 30, 60, 90)]
    ids1 = [a.id for a in Engine([threshold()]).process(stream)]
    ids2 = [a.id for a in Engine([threshold()]).process(stream)]
    assert ids1 == ids2 and ids1


def test_disabled_rule_never_fires(make_mention):
    engine = Engine([threshold(enabled=False)])
    assert engine.process([make_mention(at_s=i, thread="t") for i in range(10)]) == []


def test_group_by_hashtag_fans_out(make_mention):
    engine = Engine([threshold(group_by=["hashtag"], conditions=["count >= 2"])])
    alerts = engine.process([make_mention("#One and #two", at_s=0), make_mention("#two again", at_s=1)])
    assert [a.group_key for a in alerts] == ["hashtag=two"]


def test_late_mention_outside_window_is_not_counted(make_mention):
    engine = Engine([threshold(conditions=["count >= 2"])])
    engine.process([make_mention(at_s=10_000, thread="t")])
    assert engine.process([make_mention(at_s=0, thread="t")]) == []


def test_template_renders_metrics(make_mention):
    rule = threshold(title="{count} on {thread}", message="{share_negative:.0%} negative")
    alerts = Engine([rule]).process([make_mention(at_s=i, thread="t9", compound=-0.5) for i in range(3)])
    assert alerts[0].title == "3 on t9"
    assert alerts[0].summary == "100% negative"


def test_snapshot_restore_and_warm_keep_the_episode_id_across_a_restart(make_mention):
    import json

    stream = [make_mention(at_s=at, thread="t", compound=-0.5) for at in (0, 10, 20)]
    first = Engine([threshold(resolve_after="0s")])
    fired = first.process(stream)
    saved = json.loads(json.dumps(first.snapshot()))  # it must survive JSON

    # A new process: restore decisions, refill windows from the store, go on.
    second = Engine([threshold(resolve_after="0s")])
    second.restore(saved)
    second.warm(stream)
    assert second.process([make_mention(at_s=30, thread="t")]) == []  # no second firing
    resolved = second.advance(fired[0].fired_at_ts + 700)
    assert [(a.status, a.id, a.seq) for a in resolved] == [("resolved", fired[0].id, 2)]


def test_restore_keeps_match_episode_and_resolves_it(make_mention):
    rule = MatchRule.model_validate({"id": "crisis", "kind": "match", "match": {"any": ["help"]},
                                     "group_by": ["author"], "cooldown": "0s", "resolve_after": "1h"})
    first = Engine([rule])
    (fired,) = first.process([make_mention("help me", at_s=0, author="a")])
    second = Engine([rule])
    second.restore(first.snapshot())
    (update,) = second.process([make_mention("please help", at_s=60, author="a")])
    assert (update.id, update.seq) == (fired.id, 2)
    assert [a.status for a in second.advance(fired.fired_at_ts + 60 + 3600)] == ["resolved"]


def test_resolution_is_named_after_the_last_firing_title_and_says_how_long(make_mention):
    engine = Engine([threshold(title="{count} posts on {thread}", window="5m")])
    (fired,) = engine.process([make_mention(at_s=at, thread="t") for at in (0, 1, 2)])
    (resolved,) = engine.advance(fired.fired_at_ts + 600)
    assert resolved.title == f"Resolved: {fired.title}" == "Resolved: 3 posts on t"
    # The first post left the 5m window 4m58s after the episode began (with the third post).
    assert resolved.summary.startswith("Over after 4m 58s (began 2026-11-26 12:00:02Z)")
    assert "no longer count 2 >= 3" in resolved.summary


def test_which_rules_take_mentions_from_a_place_is_asked_again_after_a_reload(make_mention):
    """The engine remembers, per place (platform, watch, watch kind, language), which rules take
    mentions from there; a reload that widens a rule must take the next mention from that place."""
    def rule(**match: Any) -> MatchRule:
        return MatchRule.model_validate({"id": "fr-posts", "kind": "match", "match": {"any": ["police"], **match}})

    engine = Engine([rule(langs=["fr"], watch_kinds=["account"])])
    at = {"watch": "metro-police", "watch_kind": "account"}
    assert engine.process([make_mention("la police", lang="fr-CA", **at)])[0].rule == "fr-posts"
    assert engine.process([make_mention("the police", lang="en", **at)]) == []
    assert engine.process([make_mention("la police", lang="fr", watch="tag", watch_kind="hashtag")]) == []
    engine.replace_rules([rule(langs=["fr", "en"])])
    assert [a.rule for a in engine.process([make_mention("the police", lang="en", **at)])] == ["fr-posts"]
    assert [a.rule for a in engine.process([make_mention("police", lang="fr", watch="tag", watch_kind="hashtag")])] \
        == ["fr-posts"]
    assert engine.process([make_mention("no match here", lang="en", **at)]) == []
