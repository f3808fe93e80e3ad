"""Parsing mentions: the quick path for well-formed objects decides exactly as the field-by-field one."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from listener.errors import MentionError
from listener.mention import Mention, Sentiment

GOOD: dict[str, Any] = {
    "platform": "bluesky", "id": "at://did:plc:abc/app.bsky.feed.post/3kq",
    "url": "https://bsky.app/profile/someone.bsky.social/post/3kq", "author": "someone.bsky.social",
    "text": "Thank you #MetroCares", "lang": "en", "created_at": "2026-11-26T21:04:05Z",
    "watch": "officer-swift", "watch_kind": "account", "in_reply_to": None, "thread": "at://root",
    "metrics": {"likes": 3, "reposts": 0, "replies": 1},
}

VARIANTS: list[dict[str, Any]] = [
    {},
    {"created_at": "2026-11-26T21:04:05.250+02:00"},
    {"created_at": 1_790_000_000},
    {"url": "", "author": "", "thread": None, "metrics": None},
    {"x_source_rank": 3, "labels": ["a"]},  # unknown keys are kept
    {"sentiment": {"compound": -0.5, "pos": 0.0, "neu": 0.5, "neg": 0.5}},
    {"sentiment": "not an object"},
    {"metrics": {}},
    {"watch_kind": ""},
    # bad input: the error must say the same thing
    {"text": ""},
    {"platform": None, "id": ""},
    {"id": 17},
    {"author": 5},
    {"watch_kind": "hashtags"},
    {"metrics": [1, 2]},
    {"created_at": "yesterday"},
    {"created_at": "2026-11-26T21:04:05"},
    {"sentiment": {"compound": "x"}},
]


def _outcome(parse: Any, data: dict[str, Any]) -> Any:
    try:
        return parse(data)
    except MentionError as exc:
        return ("error", str(exc))


@pytest.mark.parametrize("change", VARIANTS)
def test_quick_path_gives_the_same_mention_or_error(change):
    data = {**GOOD, **change}
    assert _outcome(Mention.from_dict, data) == _outcome(Mention._from_dict_checked, data)


def test_with_sentiment_is_replace():
    # Every field set and distinct, so a field that with_sentiment forgot or misplaced shows.
    m = Mention.from_dict({**GOOD, "in_reply_to": "at://parent", "extra_field": 1})
    assert all(getattr(m, f.name) not in (None, {}) for f in dataclasses.fields(Mention) if f.name != "sentiment")
    score = Sentiment(-0.4, 0.0, 0.6, 0.4)
    assert m.with_sentiment(score) == dataclasses.replace(m, sentiment=score)
