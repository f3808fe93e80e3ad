"""The rule kinds beyond match and threshold, escalation, flags and poll reports. Pure: no I/O."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from listener.rules import Engine
from listener.rules.model import Rule

from conftest import T0

HOUR, DAY, WEEK = 3600, 86400, 604800
T0S = T0.timestamp()
RULE = TypeAdapter(Rule)


def rule(**spec: Any) -> Any:
    base: dict[str, Any] = {"id": "r", "cooldown": "0s"}
    base.update(spec)
    return RULE.validate_python(base)


def steady(make_mention, start_s: float, end_s: float, every_s: float, **fields: Any) -> list:
    out, t = [], start_s
    while t < end_s:
        out.append(make_mention(at_s=t, **fields))
        t += every_s
    return out


# -- spike ------------------------------------------------------------------------------


def spike_rule(**over: Any) -> Any:
    spec = {"kind": "spike", "window": "1h", "baseline": {"type": "trailing", "period": "24h"},
            "factor": 3, "min_count": 10, "group_by": ["watch"], "resolve_after": "30m"}
    spec.update(over)
    return rule(**spec)


def test_spike_fires_on_a_burst_over_a_trailing_baseline(make_mention):
    engine = Engine([spike_rule()])
    # A day of ~6 mentions an hour, then 40 in half an hour.
    assert engine.process(steady(make_mention, 0, 25 * HOUR, 600, watch="w")) == []
    burst = steady(make_mention, 25 * HOUR, 25 * HOUR + 1800, 45, watch="w")
    fired = engine.process(burst)
    assert [(a.status, a.group_key) for a in fired] == [("firing", "watch=w")]
    a = fired[0]
    assert 5 <= a.metrics["baseline"] <= 7 and a.metrics["ratio"] >= 3
    assert "3x the baseline 6.0, over the preceding 1d" in a.explanation
    # The burst leaves the window, the condition stays false for 30m: resolved.
    resolved = engine.advance(T0S + 27 * HOUR)
    assert [(r.status, r.id) for r in resolved] == [("resolved", a.id)]


def test_spike_stays_quiet_without_enough_history_and_says_so(make_mention):
    engine = Engine([spike_rule()])
    # Straight into a burst, 2 hours after the engine started: no 25h of history yet.
    engine.process(steady(make_mention, 0, 2 * HOUR, 600, watch="w"))
    assert engine.process(steady(make_mention, 2 * HOUR, 2 * HOUR + 1800, 30, watch="w")) == []
    note = engine.history_note("r")
    assert note and "needs 1d 1h of history, had 2h" in note and "stayed quiet" in note


def test_spike_needs_min_count_even_from_zero_baseline(make_mention):
    engine = Engine([spike_rule(min_count=20)])
    engine.advance(T0S)
    engine.advance(T0S + 26 * HOUR)  # a day with nothing: the baseline is 0
    assert engine.process(steady(make_mention, 26 * HOUR, 26 * HOUR + 600, 60, watch="new")) == []
    fired = engine.process(steady(make_mention, 26 * HOUR + 600, 26 * HOUR + 1800, 60, watch="new"))
    assert [a.metrics["count"] for a in fired] == [20]
    assert fired[0].metrics["baseline"] == 0 and fired[0].metrics["ratio"] is None


def test_seasonal_spike_uses_the_median_so_one_past_spike_does_not_poison_it(make_mention):
    r = spike_rule(baseline={"type": "seasonal", "weeks": 3, "min_weeks": 2}, factor=2, min_count=5, min_mads=0)
    engine = Engine([r])
    at = 3 * WEEK + 10 * HOUR  # the end of the hour we test, three weeks in
    stream = []
    for k in (3, 2, 1):  # 10 an hour around that hour each week, but 60 in it two weeks ago
        start = at - k * WEEK
        stream += steady(make_mention, start - 4 * HOUR, start - HOUR, 360, watch="w")
        stream += steady(make_mention, start - HOUR, start, 60 if k == 2 else 360, watch="w")
        stream += steady(make_mention, start, start + 2 * HOUR, 360, watch="w")
    stream += steady(make_mention, at - 4 * HOUR, at - HOUR, 360, watch="w")
    assert [a.status for a in engine.process(stream)] == []
    # 25 in the hour: 2.5x the median (10), though under the mean (27).
    fired = engine.process(steady(make_mention, at - HOUR, at, HOUR / 25, watch="w"))
    assert len(fired) == 1
    assert fired[0].metrics["baseline"] == 10 and fired[0].metrics["baseline_mad"] == 0


def test_seasonal_needs_min_weeks(make_mention):
    r = spike_rule(baseline={"type": "seasonal", "weeks": 4, "min_weeks": 2})
    engine = Engine([r])
    engine.process(steady(make_mention, 0, 3 * HOUR, 360, watch="w"))
    # One week later: only one week of history.
    assert engine.process(steady(make_mention, WEEK + HOUR, WEEK + 2 * HOUR, 30, watch="w")) == []
    assert "1 of the 2 weeks" in (engine.history_note("r") or "")


def test_seasonal_mad_bound_holds_back_a_noisy_group(make_mention):
    r = spike_rule(baseline={"type": "seasonal", "weeks": 3, "min_weeks": 3}, factor=1.5, min_count=5,
                   min_mads=3)
    engine = Engine([r])
    at = 3 * WEEK + 10 * HOUR
    stream = []
    for k, n in ((3, 10), (2, 30), (1, 20)):  # median 20, MAD 10
        start = at - k * WEEK - HOUR
        stream += steady(make_mention, start, start + HOUR, HOUR / n, watch="w")
    engine.process(stream)
    # 35 is 1.75x the median but under median + 3 MAD (50): quiet.
    assert engine.process(steady(make_mention, at - HOUR, at, HOUR / 35, watch="w")) == []


# -- sentiment shift ------------------------------------------------------------------------


def test_sentiment_shift_fires_when_the_mean_falls_below_the_baseline(make_mention):
    r = rule(kind="sentiment_shift", window="2h", baseline={"period": "24h"}, drop=0.3, min_count=10,
             min_baseline_count=20, group_by=["watch"], resolve_after="1h")
    engine = Engine([r])
    assert engine.process(steady(make_mention, 0, 26 * HOUR, 900, watch="w", compound=0.4)) == []
    fired = engine.process(steady(make_mention, 26 * HOUR, 27 * HOUR, 240, watch="w", compound=-0.3))
    assert [a.status for a in fired] == ["firing"]
    m = fired[0].metrics
    assert m["baseline"] == pytest.approx(0.4) and m["drop"] >= 0.3 and m["count"] >= 10
    assert {c["metric"] for c in fired[0].conditions} == {"count", "drop"}


def test_sentiment_shift_without_enough_baseline_mentions_is_quiet(make_mention):
    r = rule(kind="sentiment_shift", window="1h", baseline={"period": "2h"}, drop=0.3, min_count=5,
             min_baseline_count=50)
    engine = Engine([r])
    engine.process(steady(make_mention, 0, 3 * HOUR, 1200, compound=0.5))
    assert engine.process(steady(make_mention, 3 * HOUR, 4 * HOUR, 300, compound=-0.6)) == []
    assert "fewer than 50" in (engine.history_note("r") or "")


# -- flatline -----------------------------------------------------------------------------


def test_flatline_fires_after_silence_and_resolves_when_mentions_return(make_mention):
    r = rule(kind="flatline", silent_for="2h", group_by=["watch", "platform"], severity="low")
    engine = Engine([r])
    engine.process([make_mention(at_s=0, watch="w", platform="x")])
    assert engine.advance(T0S + 2 * HOUR - 1) == []
    fired = engine.advance(T0S + 3 * HOUR)
    assert [(a.status, a.group_key, a.fired_at_ts - T0S) for a in fired] == [("firing", "watch=w,platform=x", 7200)]
    assert fired[0].metrics["silent_s"] == 7200 and "2h" in fired[0].summary
    back = engine.process([make_mention(at_s=4 * HOUR, watch="w", platform="x")])
    assert [a.status for a in back] == ["resolved"]


def test_flatline_failing_polls_and_their_error(make_mention):
    r = rule(kind="flatline", failing_for="30m", group_by=["watch"], severity="medium",
             escalate=[{"severity": "high", "conditions": ["failing_s >= 7200"]}])
    engine = Engine([r])
    assert engine.record_poll("w", "bluesky", T0S, ok=True) == []
    assert engine.record_poll("w", "bluesky", T0S + 60, ok=False, error="HTTP 503") == []
    assert engine.record_poll("w", "bluesky", T0S + 600, ok=False, error="HTTP 502") == []
    fired = engine.advance(T0S + 60 + 1800)
    assert [(a.status, a.severity) for a in fired] == [("firing", "medium")]
    assert "HTTP 502" in fired[0].summary and fired[0].metrics["failed_polls"] == 2
    escalated = engine.record_poll("w", "bluesky", T0S + 60 + 7200, ok=False, error="timeout")
    assert [(a.status, a.severity, a.seq, a.id) for a in escalated] == [("firing", "high", 2, fired[0].id)]
    ok = engine.record_poll("w", "bluesky", T0S + 3 * HOUR, ok=True)
    assert [a.status for a in ok] == ["resolved"]


def test_flatline_knows_a_watch_from_polls_alone():
    engine = Engine([rule(kind="flatline", silent_for="1h", group_by=["watch"])])
    engine.record_poll("quiet", "x", T0S, ok=True)
    fired = engine.advance(T0S + HOUR)
    assert [a.group_key for a in fired] == ["watch=quiet"]


def test_flatline_state_survives_a_restart():
    r = rule(kind="flatline", failing_for="30m", group_by=["watch"])
    first = Engine([r])
    first.record_poll("w", "x", T0S, ok=False, error="boom")
    saved = json.loads(json.dumps(first.snapshot()))
    second = Engine([r])
    second.restore(saved)
    fired = second.advance(T0S + 1800)
    assert len(fired) == 1 and "boom" in fired[0].summary


# -- escalate, flag -----------------------------------------------------------------------


def test_threshold_escalates_the_same_episode_at_once(make_mention):
    r = rule(kind="threshold", window="30m", conditions=["count >= 3"], cooldown="1h", severity="medium",
             escalate=[{"severity": "high", "conditions": ["count >= 6"]},
                       {"severity": "critical", "conditions": ["count >= 9"]}])
    engine = Engine([r])
    alerts = engine.process([make_mention(at_s=i * 10) for i in range(10)])
    assert [(a.severity, a.seq) for a in alerts] == [("medium", 1), ("high", 2), ("critical", 3)]
    assert len({a.id for a in alerts}) == 1
    assert "critical because count 9 >= 9" in alerts[-1].explanation


def test_escalation_already_true_at_first_firing(make_mention):
    r = rule(kind="threshold", window="30m", conditions=["count >= 3"], combine="all",
             escalate=[{"severity": "critical", "conditions": ["mean_compound <= -0.5"]}])
    (a,) = Engine([r]).process([make_mention(at_s=i, compound=-0.8) for i in range(3)])
    assert a.severity == "critical"


def test_match_rule_escalates_on_repeat_within_the_episode(make_mention):
    r = rule(kind="match", match={"any": ["hurt"]}, group_by=["author"], cooldown="1h", severity="high",
             escalate=[{"severity": "critical", "conditions": ["count >= 3"]}])
    engine = Engine([r])
    out = engine.process([make_mention("I will hurt you", at_s=i * 60, author="a") for i in range(3)])
    assert [(a.severity, a.seq) for a in out] == [("high", 1), ("critical", 2)]


def test_flag_counts_hostile_replies_and_its_samples_lead(make_mention):
    r = rule(kind="threshold", window="30m", group_by=["thread"],
             flag={"any_of": [{"sentiment": "negative"}, {"any": ["cringe", "delete this"]}]},
             conditions=["flagged >= 3", "share_flagged >= 0.5"])
    engine = Engine([r])
    texts = [("Cringe. Absolutely cringe.", 0.0), ("delete this", 0.0), ("lovely", 0.6),
             ("awful", -0.6), ("great job", 0.6)]
    fired = engine.process([make_mention(t, at_s=i, compound=c, thread="p") for i, (t, c) in enumerate(texts)])
    assert [a.metrics["flagged"] for a in fired] == [3]
    assert {s.text for s in fired[0].samples} == {"Cringe. Absolutely cringe.", "delete this", "awful"}


def test_thanks_are_not_flagged(make_mention):
    r = rule(kind="threshold", window="30m", group_by=["thread"],
             flag={"any_of": [{"sentiment": "negative"}, {"any": ["cringe"]}]}, conditions=["flagged >= 3"])
    assert Engine([r]).process([make_mention("thank you!", at_s=i, compound=0.6, thread="p")
                                for i in range(20)]) == []


# -- validation -------------------------------------------------------------------------


@pytest.mark.parametrize("spec, message", [
    ({"kind": "threshold", "window": "1h", "conditions": ["ratio >= 2"]}, "does not measure 'ratio'"),
    ({"kind": "threshold", "window": "1h", "conditions": ["flagged >= 2"]}, "needs a 'flag' filter"),
    ({"kind": "spike", "window": "2h", "baseline": {"period": "1h"}}, "at least as long as the window"),
    ({"kind": "flatline"}, "needs silent_for, failing_for or both"),
    ({"kind": "flatline", "silent_for": "1h", "group_by": ["author"]}, "only group_by watch"),
    ({"kind": "flatline", "silent_for": "1h", "match": {"any": ["x"]}}, "platforms, watches and watch_kinds"),
    ({"kind": "match", "severity": "high", "escalate": [{"severity": "medium", "conditions": ["count >= 2"]}]},
     "not above"),
    ({"kind": "sentiment_shift", "window": "1h"}, "drop"),
])
def test_invalid_rules_are_refused(spec, message):
    with pytest.raises(ValidationError, match=message):
        rule(**spec)


# -- restarts and the payload contract ------------------------------------------------------


def test_a_restarted_engine_refills_baselines_from_the_store_and_keeps_the_episode(make_mention):
    r = spike_rule()
    history = steady(make_mention, 0, 25 * HOUR, 600, watch="w")
    burst = steady(make_mention, 25 * HOUR, 25 * HOUR + 1800, 45, watch="w")
    first = Engine([r])
    first.process(history)
    (fired,) = first.process(burst)
    saved = json.loads(json.dumps(first.snapshot()))

    second = Engine([r])
    assert second.max_window_s() == 25 * HOUR  # what the daemon must load back from the store
    second.restore(saved)
    second.warm(m for m in history + burst if m.ts >= T0S + 26 * HOUR - second.max_window_s())
    assert second.process([make_mention(at_s=25 * HOUR + 1801, watch="w")]) == []  # no second firing
    resolved = second.advance(T0S + 27 * HOUR)
    assert [(a.status, a.id) for a in resolved] == [("resolved", fired.id)]


def test_payloads_of_every_kind_validate_against_the_alert_schema(make_mention):
    import jsonschema

    from listener.paths import ALERT_SCHEMA

    schema = json.loads(ALERT_SCHEMA.read_text())
    engine = Engine([
        spike_rule(id="spike", min_count=5, baseline={"type": "trailing", "period": "2h"}),
        rule(id="shift", kind="sentiment_shift", window="1h", baseline={"period": "2h"}, drop=0.2, min_count=5,
             min_baseline_count=5),
        rule(id="flat", kind="flatline", silent_for="30m", failing_for="10m"),
        rule(id="thr", kind="threshold", window="1h", conditions=["flagged >= 2"], flag={"sentiment": "negative"},
             escalate=[{"severity": "high", "conditions": ["flagged >= 4"]}]),
        rule(id="m", kind="match", match={"any": ["help"]}),
    ])
    alerts = engine.process(steady(make_mention, 0, 3 * HOUR, 600, compound=0.5, text="help"))
    alerts += engine.process(steady(make_mention, 3 * HOUR, 3.5 * HOUR, 60, compound=-0.6))
    alerts += engine.record_poll("w", "x", T0S + 4 * HOUR, ok=False, error="HTTP 500")
    alerts += engine.advance(T0S + 6 * HOUR)
    assert {a.rule for a in alerts} == {"spike", "shift", "flat", "thr", "m"}
    assert {a.status for a in alerts} == {"firing", "resolved"}
    for a in alerts:
        jsonschema.validate(a.to_payload(), schema)
        assert a.explanation
