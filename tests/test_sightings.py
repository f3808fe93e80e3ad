"""A post found by several watches (an @mention that also carries our campaign hashtag) counts for each.

The mention is stored once, under the watch that found it first; every other watch that finds it
is a sighting. Rules on that watch count it too, a rule never counts one post twice in one group,
and a match rule alerts on it once. Real SQLite store, real pipeline.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from listener.pipeline import Pipeline
from listener.rules import Engine
from listener.rules.model import Rule
from listener.sentiment import SentimentScorer
from listener.store import Store
from pydantic import TypeAdapter

RULE: TypeAdapter[Any] = TypeAdapter(Rule)
HIJACK = RULE.validate_python({"id": "hijack", "kind": "threshold", "match": {"watch_kinds": ["hashtag"]},
                               "group_by": ["watch"], "window": "1h", "conditions": ["count >= 3"]})
PER_WATCH = RULE.validate_python({"id": "per-watch", "kind": "threshold", "group_by": ["watch"], "window": "1h",
                                  "conditions": ["count >= 4"]})
PER_AUTHOR = RULE.validate_python({"id": "per-author", "kind": "threshold", "group_by": ["author"], "window": "1h",
                                   "conditions": ["count >= 3"]})
CLOWNS = RULE.validate_python({"id": "clowns", "kind": "match", "match": {"any": ["clowns"]},
                               "group_by": ["watch"], "cooldown": "0s"})
RULES = [HIJACK, PER_WATCH, PER_AUTHOR, CLOWNS]


def posts(make_mention, n: int, start_s: float = 0.0) -> list[Any]:
    """`n` posts by one author that name our account and carry our hashtag, found by the account watch."""
    return [make_mention(f"@MetroPolice #MetroCares what clowns {i}", at_s=start_s + 60 * i, author="angry1",
                         watch="metro-police", watch_kind="account") for i in range(n)]


def by_hashtag(mentions: list[Any]) -> list[Any]:
    return [replace(m, watch="metrocares", watch_kind="hashtag") for m in mentions]


def fired(alerts: list[Any]) -> list[tuple[str, str, str]]:
    return [(a.rule, a.status, a.group_key) for a in alerts]


def test_posts_first_found_by_an_account_watch_count_for_the_hashtag_watch_that_finds_them_next(
        tmp_path, make_mention):
    store = Store(tmp_path / "s.db")
    pipeline = Pipeline.resume(store, SentimentScorer(), Engine(RULES))
    found = posts(make_mention, 3)
    first = pipeline.ingest(found)
    # By the account watch: the per-author rule counts 3, each post alerts once as clowns, the
    # hashtag rule has seen nothing yet.
    assert set(fired(first.alerts)) == {("clowns", "firing", "watch=metro-police"),
                                        ("per-author", "firing", "author=angry1")}
    # The hashtag watch's next poll finds the same three posts: stored once, counted for it now.
    again = pipeline.ingest(by_hashtag(found))
    assert again.new == []
    assert fired(again.alerts) == [("hijack", "firing", "watch=metrocares")]  # not per-author again, not clowns
    # The account watch finding them again (a catch-up overlap) changes nothing.
    assert pipeline.ingest(found).alerts == [] and pipeline.ingest(by_hashtag(found)).alerts == []
    assert store.db.execute("SELECT count(*) FROM sightings").fetchone()[0] == 3
    store.close()


def test_a_post_found_by_two_watches_in_one_batch_counts_for_both_once(tmp_path, make_mention):
    store = Store(tmp_path / "s.db")
    pipeline = Pipeline.resume(store, SentimentScorer(), Engine(RULES))
    found = posts(make_mention, 2)
    result = pipeline.ingest(found + by_hashtag(found))
    assert len(result.new) == 2
    engine = pipeline.engine
    assert {key: len(w) for key, w in engine.runtime("per-watch").windows().items()} == \
        {"watch=metro-police": 2, "watch=metrocares": 2}  # type: ignore[union-attr]
    assert {key: len(w) for key, w in engine.runtime("per-author").windows().items()} == \
        {"author=angry1": 2}  # type: ignore[union-attr]
    assert fired(result.alerts).count(("per-watch", "firing", "watch=metro-police")) == 0
    store.close()


def test_a_restarted_daemon_still_counts_the_posts_other_watches_found(tmp_path, make_mention):
    """Sightings are stored: windows refilled after a restart hold them, as an unbroken run's do."""
    found = posts(make_mention, 3)
    runs = {}
    for name, restart in (("unbroken", False), ("restarted", True)):
        store = Store(tmp_path / f"{name}.db")
        pipeline = Pipeline.resume(store, SentimentScorer(), Engine(RULES))
        pipeline.ingest(found)
        pipeline.ingest(by_hashtag(found[:2]))
        if restart:
            store.close()
            store = Store(tmp_path / f"{name}.db")
            pipeline = Pipeline.resume(store, SentimentScorer(), Engine(RULES))
        runs[name] = fired(pipeline.ingest(by_hashtag(found[2:])).alerts)
        store.close()
    assert runs["restarted"] == runs["unbroken"] == [("hijack", "firing", "watch=metrocares")]


def test_a_hashtag_hijack_whose_posts_also_tag_our_account_is_caught_by_the_shipped_rule(tmp_path, make_mention):
    """The shipped hashtag-negative-burst looks at hashtag watches only. In a hijack most posts also
    tag @MetroPolice, so the account watch often finds them first: they must still count there."""
    from listener.paths import SHIPPED_RULES
    from listener.rules import load_rules

    rules = load_rules([SHIPPED_RULES]).rules
    store = Store(tmp_path / "s.db")
    pipeline = Pipeline.resume(store, SentimentScorer(), Engine(rules))
    hostile = ["what a disgrace", "pathetic PR stunt", "absolute clowns, useless", "shameful and disgusting",
               "liars, all of you", "this is propaganda and it is awful"]
    found = [make_mention(f"@MetroPolice #MetroCares {hostile[i % len(hostile)]} {i}", at_s=40 * i,
                          author=f"critic{i}", compound=-0.7, watch="metro-police", watch_kind="account")
             for i in range(20)]
    alerts = pipeline.ingest(found).alerts
    assert not [a for a in alerts if a.rule == "hashtag-negative-burst"]  # the account watch's finds alone
    alerts = pipeline.ingest(by_hashtag(found)).alerts
    burst = [a for a in alerts if a.rule == "hashtag-negative-burst"]
    assert [(a.status, a.group_key) for a in burst] == [("firing", "watch=metrocares")]
    assert burst[0].metrics["flagged"] >= 15 and burst[0].metrics["unique_authors"] >= 10
    store.close()
