"""Match filters: terms are case-folded and whole-word; hashtags, handles and phrases work."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from listener.rules.filters import compile_match, features
from listener.rules.model import Match


def passes(match: dict[str, Any], mention) -> bool:
    predicate = compile_match(Match.model_validate(match))
    return predicate(mention, lambda: features(mention.text))


@pytest.mark.parametrize("text, expected", [
    ("I want to DIE", True),
    ("i want to die.", True),
    ("want to dies", False),
    ("I want to diet", False),
])
def test_phrases_are_word_bounded_and_case_folded(make_mention, text, expected):
    assert passes({"any": ["want to die"]}, make_mention(text)) is expected


def test_hashtags_and_handles(make_mention):
    m = make_mention("Loved the #MetroCares BBQ @ConstDaniels")
    assert passes({"any": ["#metrocares"]}, m)
    assert passes({"any": ["metrocares"]}, m)  # a word matches its hashtag too
    assert passes({"any": ["@constdaniels"]}, m)
    assert not passes({"any": ["#constdaniels"]}, m)


def test_all_none_and_sentiment(make_mention):
    m = make_mention("the video is embarrassing", compound=-0.6)
    assert passes({"all": ["video", "embarrassing"], "sentiment": "negative"}, m)
    assert not passes({"all": ["video", "funny"]}, m)
    assert not passes({"none": ["video"]}, m)
    assert not passes({"sentiment": "positive"}, m)
    assert passes({"compound_max": -0.5}, m)


def test_regex_is_re2_and_rejects_backreferences(make_mention):
    assert passes({"regex": r"\bplate\s+[A-Z]{3}"}, make_mention("partial plate BKR 4"))
    with pytest.raises(ValidationError, match="RE2"):
        Match.model_validate({"regex": r"(a)\1"})


def test_platform_watch_kind_and_lang(make_mention):
    m = make_mention("hi", platform="bluesky", watch="w1", watch_kind="post", lang="en-GB")
    assert passes({"platforms": ["bluesky"], "watches": ["w1"], "watch_kinds": ["post"], "langs": ["en"]}, m)
    assert not passes({"platforms": ["x"]}, m)
    assert not passes({"watch_kinds": ["hashtag"]}, m)
