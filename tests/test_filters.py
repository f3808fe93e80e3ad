"""Match filters: terms are case-folded and whole-word; hashtags, handles and phrases work."""

from __future__ import annotations

from typing import Any

import pytest
import re2
from pydantic import ValidationError

from listener.paths import SHIPPED_RULES
from listener.rules.filters import RegexBank, _re2_options, _regex_text, compile_match, features
from listener.rules.loader import load_rules
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


def test_regexes_of_a_rule_set_searched_together_decide_as_one_search_each(make_mention):
    """The shared RegexBank (one RE2 pass per text) agrees with searching each regex on its own."""
    patterns: list[str] = [r"\bplate\s+[a-z]{3}\s*\d", "🤡|🙄", r"^\d+$", "."]

    def collect(match: Match | None) -> None:
        if match is not None:
            patterns.extend(p for p in (match.regex, match.none_regex) if p)
            for branch in match.any_of or ():
                collect(branch)

    for rule in load_rules([SHIPPED_RULES]).rules:
        collect(rule.match)
        collect(getattr(rule, "flag", None))
    bank = RegexBank()
    indices = [bank.add(p) for p in patterns]
    alone = [re2.compile(p, options=_re2_options()) for p in patterns]
    texts = [
        "I'm going to kill myself tonight", "IM GONNA END IT ALL", "i can’t go on like this", "nobody would miss me",
        "someone should burn the station down", "Kill all cops.", "partial PLATE bkr 4 on the van", "🤡🤡 clowns",
        "12345", "", "the suspect was wearing a red hoodie", "want to die of embarrassment lol", "lovely day",
        "Cops should all be shot", "I’ll find you and stab you", "ſtation", "K",
    ]
    for text in texts + [t.upper() for t in texts]:
        expected = {i for i, r in zip(indices, alone) if r.search(_regex_text(text)) is not None}
        assert bank.hits(text) == expected, text
    with pytest.raises(RuntimeError):
        bank.add("late")


def test_regex_and_none_regex_share_one_bank(make_mention):
    m = make_mention("They were driving a blue van, plate ABC 123")
    assert passes({"regex": r"plate\s+[a-z]{3}", "none_regex": "scam"}, m)
    assert not passes({"regex": r"plate\s+[a-z]{3}", "none_regex": "blue van"}, m)
    assert passes({"any_of": [{"regex": "nothing here"}, {"regex": "BLUE"}]}, m)


# -- what an alert's examples say they matched ---------------------------------------------

def explained(match: dict[str, Any], mention, flag: dict[str, Any] | None = None) -> list[str] | None:
    from listener.rules.filters import compile_explainer

    explainer = compile_explainer(Match.model_validate(match), Match.model_validate(flag) if flag else None)
    return None if explainer is None else explainer(mention)


def test_an_example_names_the_phrases_and_the_text_each_regex_matched(make_mention):
    match = {"any_of": [{"any": ["end my life", "kms"]},
                        {"regex": r"\b(can'?t|cannot)\s+(go on|take it anymore)\b"}]}
    post = make_mention("honestly I CAN’T go on, I want to end my life")
    assert explained(match, post) == ["CAN'T go on", "end my life"]  # in the order they occur


def test_only_the_branches_a_post_passes_are_reported_and_exclusions_never_are(make_mention):
    match = {"any_of": [{"any": ["suicide"], "none": ["prevention"]}, {"any": ["hotline"]}]}
    # "suicide" is there, but its branch excludes "prevention": only the hotline branch passed.
    assert explained(match, make_mention("suicide prevention hotline number")) == ["hotline"]
    assert explained(match, make_mention("thinking about suicide")) == ["suicide"]


def test_a_shorter_find_inside_a_longer_one_is_not_repeated(make_mention):
    match = {"any_of": [{"any": ["end it all"]}, {"regex": r"going to end it all"}]}
    assert explained(match, make_mention("I'm going to end it all")) == ["going to end it all"]


def test_rules_that_test_no_text_have_nothing_to_explain(make_mention):
    assert explained({"watch_kinds": ["post"], "sentiment": "negative"}, make_mention("awful")) is None
    # A threshold rule's flag is explained as well as its match block.
    assert explained({"watch_kinds": ["post"]}, make_mention("so cringe"), flag={"any": ["cringe"]}) == ["cringe"]


def test_alert_samples_carry_what_they_matched_within_the_size_limits(make_mention):
    from listener.alert import MAX_MATCHED, MAX_MATCHED_TEXT
    from listener.rules import Engine
    from listener.rules.model import MatchRule, ThresholdRule

    crisis = MatchRule.model_validate({"id": "crisis", "kind": "match", "severity": "critical",
                                       "match": {"any": ["want to die"], "regex": r"tonight\b.*"}})
    volume = ThresholdRule.model_validate({"id": "volume", "kind": "threshold", "window": "10m",
                                           "conditions": ["count >= 1"]})
    text = "I want to die tonight " + "and nothing anyone says will change it " * 5
    payloads = [a.to_payload() for a in Engine([crisis, volume]).process([make_mention(text)])]
    by_rule = {p["rule"]: p for p in payloads}
    matched = by_rule["crisis"]["samples"][0]["matched"]
    assert matched[0] == "want to die" and matched[1].startswith("tonight and nothing")
    assert len(matched) <= MAX_MATCHED and all(len(t) <= MAX_MATCHED_TEXT for t in matched)
    assert by_rule["crisis"]["explanation"].startswith('fired: a mention matched ("want to die", "tonight and')
    assert "matched" not in by_rule["volume"]["samples"][0]


def test_first_person_words_a_rule_requires_as_context_are_not_listed(make_mention):
    match = {"any": ["suicide"], "any_of": [{"any": ["i", "i'm", "my", "me"]}]}
    assert explained(match, make_mention("I'm thinking about suicide, my head is a mess")) == ["suicide"]


def _rule_test_texts() -> list[str]:
    """Every text in the shipped rule tests (posts that must fire and posts that must not)."""
    from listener.yamlfile import load_yaml, plain

    texts: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "text" and isinstance(value, str):
                    texts.append(value)
                elif key == "texts" and isinstance(value, list):
                    texts.extend(v for v in value if isinstance(v, str))
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    for path in sorted((SHIPPED_RULES / "tests").glob("*.yaml")):
        walk(plain(load_yaml(path.read_text(), str(path))))
    return texts


def test_a_texts_words_rule_out_a_filter_only_when_the_filter_fails(make_mention):
    """`text_need` is what the engine checks before a rule's predicate: it must never rule out a
    mention the predicate passes, and it should rule out most mentions for the text rules."""
    from listener.demo.scenario import CHATTER, CRITICISM, DEFENDERS, THANKS
    from listener.rules.filters import text_need

    texts = _rule_test_texts() + [t[0] for t in CHATTER] + CRITICISM + DEFENDERS + THANKS + [
        "I'm going to kill myself tonight", "IM GONNA END IT ALL", "i can’t go on like this", "#MetroCares rocks",
        "partial PLATE bkr 4 on the van", "🤡🤡 clowns", "@ConstDaniels thanks!", "non-emergency line?",
    ]
    texts = [t for t in texts if t.strip()]
    assert len(texts) > 200
    extra = [{"all": ["non-emergency", "line"]}, {"any": ["#metrocares", "@constdaniels"]}, {"regex": "🤡{2,}"},
             {"any_of": [{"any": ["thanks"]}, {"sentiment": "negative"}]}, {"none": ["love"]}]
    blocks = [(f"extra-{i}", Match.model_validate(b)) for i, b in enumerate(extra)]
    for rule in load_rules([SHIPPED_RULES]).rules:
        blocks += [(rule.id, b) for b in (rule.match, getattr(rule, "flag", None)) if b is not None]
        if rule.match.classifiers():  # a classifier reads every text: nothing rules it out...
            assert text_need(rule.match, RegexBank()) is None
            # ...but the rule's term lists are still looked up by word
            branches = [b for b in rule.match.any_of or () if b.classifier is None]
            blocks.append((f"{rule.id} (terms)", rule.match.model_copy(update={"any_of": branches})))
    ruled_out: dict[str, float] = {}
    for name, block in blocks:
        bank = RegexBank()
        predicate = compile_match(block, bank)
        need = text_need(block, bank)
        out = 0
        for text in texts:
            m = make_mention(text.format(at="@MetroPolice", tag="MetroCares"), compound=-0.5)
            feats = features(m.text)
            if need is not None and need[0].isdisjoint(feats.words) and need[1].isdisjoint(bank.hits(m.text)):
                assert not predicate(m, lambda f=feats: f), (name, text)
                out += 1
        ruled_out[name] = max(ruled_out.get(name, 0.0), out / len(texts))
    for rule_id in ("person-in-crisis", "threat-against-officers", "crime-tip"):
        assert ruled_out[f"{rule_id} (terms)"] > 0.3, ruled_out  # most posts never reach the term lists


def test_every_need_the_engine_may_learn_to_use_is_necessary(make_mention):
    """`need_choices`: whichever alternative the engine keeps for each slot, a text it rules out
    is one the filter fails (the engine learns which to keep from its stream: see learn_need). A
    rule with free branches (a classifier) is ruled out by the words of its other branches and
    then asks only the free ones (`split_free`): the verdict is the whole filter's."""
    from listener.demo.scenario import CHATTER, CRITICISM, DEFENDERS, THANKS
    from listener.rules.filters import choose_need, need_choices, split_free

    texts = [t for t in _rule_test_texts() + [t[0] for t in CHATTER] + CRITICISM + DEFENDERS + THANKS if t.strip()]
    split_rules = 0
    for rule in load_rules([SHIPPED_RULES]).rules:
        bank = RegexBank()
        predicate = compile_match(rule.match, bank)
        split = split_free(rule.match, bank)
        free = compile_match(split[1], bank) if split is not None else None
        split_rules += split is not None
        slots = need_choices(split[0] if split is not None else rule.match, bank)
        if slots is None:
            continue
        for j in range(max(len(slot) for slot in slots)):
            words, regexes = choose_need(slots, [min(j, len(slot) - 1) for slot in slots])
            for text in texts:
                m = make_mention(text.format(at="@MetroPolice", tag="MetroCares"), compound=-0.5)
                feats = features(m.text)
                if words.isdisjoint(feats.words) and regexes.isdisjoint(bank.hits(m.text)):
                    passes = free is not None and free(m, lambda f=feats: f)
                    assert predicate(m, lambda f=feats: f) == passes, (rule.id, j, text)
    assert split_rules >= 3  # crisis, threats, tips (their classifier branches)


def test_branches_looked_up_by_their_words_decide_as_branches_tried_in_turn(make_mention):
    """An `any_of` tries only the branches whose needed words (or regex hits) the text holds: on
    every shipped rule's filters, over the rule tests, the evaluation posts and the demo's texts,
    the verdict is the one trying every branch gives, and texts that pass are among them."""
    import json

    from listener.demo.scenario import CHATTER, CRITICISM, DEFENDERS, THANKS

    texts = _rule_test_texts() + [t[0] for t in CHATTER] + CRITICISM + DEFENDERS + THANKS
    for path in sorted((SHIPPED_RULES / "eval" / "posts").glob("*.jsonl")):
        texts += [json.loads(line)["text"] for line in path.read_text().splitlines() if line.strip()]
    texts = [t.format(at="@MetroPolice", tag="MetroCares") for t in texts if t.strip()]
    assert len(texts) > 500
    for rule in load_rules([SHIPPED_RULES]).rules:
        for block in (rule.match, getattr(rule, "flag", None)):
            if block is None or not block.any_of:
                continue
            kind = (block.watch_kinds or ["account"])[0]
            mentions = [make_mention(t, compound=c, watch_kind=kind) for t in texts for c in (-0.6, 0.0)]
            indexed, plain = compile_match(block, RegexBank()), compile_match(block, RegexBank(), indexed=False)
            verdicts = [(indexed(m, lambda m=m: features(m.text)), plain(m, lambda m=m: features(m.text)))
                        for m in mentions]
            assert all(a == b for a, b in verdicts), rule.id
            assert any(a for a, _ in verdicts) and not all(a for a, _ in verdicts), rule.id


def test_words_are_split_as_the_token_regex_splits_them():
    """`tokens_of` (white space first, the regex only for words with more than letters and digits)
    gives what `TOKEN.findall` gives, on every labelled post and on the awkward cases."""
    import json

    from listener.rules.text import TOKEN, tokens_of

    texts = [json.loads(line)["text"] for path in sorted((SHIPPED_RULES / "eval" / "posts").glob("*.jsonl"))
             for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    texts += ["a_b c__ _x snake_case", "#tag, @h_x! ##x # @", "word.'’- x’s it's — a…b", "٣٤ ²³ ⅷ 1,000.50",
              "emoji😂word 😂", "\u00a0a\u2003b\tc\nd", "-a- a.b. (word) \"quoted\" ...", "ça va? À BIENTÔT!",
              "@MetroPolice: #MetroCares… https://t.co/x1?y=2 e-mail o'neil", ""]
    assert len(texts) > 2000
    for text in texts:
        for folded in (text.casefold(), text.casefold().replace("’", "'")):
            assert tokens_of(folded) == TOKEN.findall(folded), folded
