"""Match filters compiled once into predicates, and the text features they share."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

import re2

from listener.mention import Mention
from listener.rules.model import Match

# A token: an optional # or @, then word characters joined by . ' ’ or - (handles, contractions).
_TOKEN = re.compile(r"[#@]?\w+(?:[.'’\-]\w+)*")


@dataclass(frozen=True, slots=True)
class TextFeatures:
    """What term filters and hashtag grouping need from a text, computed once per mention."""

    words: frozenset[str]  # tokens as written (#tag, @handle, word) plus the bare form of hashtags
    stream: str  # " w1 w2 ... " for phrase search, hashtags without their '#'
    hashtags: tuple[str, ...]  # case-folded, without '#', in order of first appearance


def features(text: str) -> TextFeatures:
    tokens = _TOKEN.findall(text.casefold().replace("’", "'"))
    words: set[str] = set()
    stream: list[str] = []
    hashtags: list[str] = []
    for tok in tokens:
        words.add(tok)
        if tok[0] == "#":
            bare = tok[1:]
            words.add(bare)
            stream.append(bare)
            if bare not in hashtags:
                hashtags.append(bare)
        else:
            stream.append(tok)
    return TextFeatures(frozenset(words), " " + " ".join(stream) + " ", tuple(hashtags))


def _term_test(term: str) -> Callable[[TextFeatures], bool]:
    """A term is a word, a #tag, an @handle or a phrase of several words."""
    tokens = _TOKEN.findall(term.casefold().replace("’", "'"))
    if len(tokens) == 1:
        token = tokens[0]
        return lambda f: token in f.words
    phrase = " " + " ".join(t.lstrip("#") for t in tokens) + " "
    return lambda f: phrase in f.stream


Predicate = Callable[[Mention, Callable[[], TextFeatures]], bool]


def compile_match(match: Match) -> Predicate:
    """One predicate for a rule's match block; cheap tests first, text tests last."""
    tests: list[Callable[[Mention, Callable[[], TextFeatures]], bool]] = []
    if match.platforms:
        platforms = frozenset(match.platforms)
        tests.append(lambda m, f: m.platform in platforms)
    if match.watches:
        watches = frozenset(match.watches)
        tests.append(lambda m, f: m.watch in watches)
    if match.watch_kinds:
        kinds = frozenset(match.watch_kinds)
        tests.append(lambda m, f: m.watch_kind in kinds)
    if match.langs:
        langs = frozenset(lang.lower() for lang in match.langs)
        tests.append(lambda m, f: (m.lang or "").lower().split("-")[0] in langs or (m.lang or "").lower() in langs)
    if match.sentiment == "negative":
        tests.append(lambda m, f: m.compound <= -0.05)
    elif match.sentiment == "positive":
        tests.append(lambda m, f: m.compound >= 0.05)
    elif match.sentiment == "neutral":
        tests.append(lambda m, f: -0.05 < m.compound < 0.05)
    if match.compound_min is not None:
        low = match.compound_min
        tests.append(lambda m, f: m.compound >= low)
    if match.compound_max is not None:
        high = match.compound_max
        tests.append(lambda m, f: m.compound <= high)
    if match.all:
        all_tests = [_term_test(t) for t in match.all]
        tests.append(lambda m, f: (feat := f()) is not None and all(t(feat) for t in all_tests))
    if match.any:
        any_tests = [_term_test(t) for t in match.any]
        tests.append(lambda m, f: (feat := f()) is not None and any(t(feat) for t in any_tests))
    if match.none:
        none_tests = [_term_test(t) for t in match.none]
        tests.append(lambda m, f: (feat := f()) is not None and not any(t(feat) for t in none_tests))
    if match.regex:
        pattern = re2.compile(match.regex, options=_re2_options())
        tests.append(lambda m, f: pattern.search(_regex_text(m.text)) is not None)
    if match.none_regex:
        unwanted = re2.compile(match.none_regex, options=_re2_options())
        tests.append(lambda m, f: unwanted.search(_regex_text(m.text)) is None)
    if match.any_of:
        branches = [compile_match(branch) for branch in match.any_of]
        tests.append(lambda m, f: any(b(m, f) for b in branches))

    if not tests:
        return lambda m, f: True
    if len(tests) == 1:
        return tests[0]
    return lambda m, f: all(t(m, f) for t in tests)


def compile_poll_match(match: Match) -> Callable[[str | None, str, str | None], bool]:
    """The part of a match block that applies to a poll report: (watch, platform, watch_kind)."""
    platforms = frozenset(match.platforms or ())
    watches = frozenset(match.watches or ())
    kinds = frozenset(match.watch_kinds or ())

    def passes(watch: str | None, platform: str, watch_kind: str | None) -> bool:
        return ((not platforms or platform in platforms) and (not watches or watch in watches)
                and (not kinds or watch_kind in kinds))

    return passes


def _regex_text(text: str) -> str:
    # Phones type curly apostrophes; rule authors type straight ones.
    return text.replace("’", "'") if "’" in text else text


def _re2_options() -> re2.Options:
    options = re2.Options()
    options.case_sensitive = False
    return options
