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
    folded = text.casefold()
    if "’" in folded:
        folded = folded.replace("’", "'")
    tokens = _TOKEN.findall(folded)
    stream = " " + " ".join(tokens) + " "
    if "#" not in folded:  # no hashtags: the tokens are the words, the stream is them in order
        return TextFeatures(frozenset(tokens), stream, ())
    # '#' can only start a token, so dropping every '#' from the stream leaves the bare tags.
    tags = [tok[1:] for tok in tokens if tok[0] == "#"]
    return TextFeatures(frozenset(tokens + tags), stream.replace("#", ""), tuple(dict.fromkeys(tags)))


def _term_test(term: str) -> Callable[[TextFeatures], bool]:
    """A term is a word, a #tag, an @handle or a phrase of several words."""
    tokens = _TOKEN.findall(term.casefold().replace("’", "'"))
    if len(tokens) == 1:
        token = tokens[0]
        return lambda f: token in f.words
    phrase = " " + " ".join(t.lstrip("#") for t in tokens) + " "
    return lambda f: phrase in f.stream


def _any_term_test(terms: list[str]) -> Callable[[TextFeatures], bool]:
    """Whether any of many terms occurs, in a few set operations rather than one test per term."""
    words: set[str] = set()
    # A phrase occurs only if each of its words does: index phrases by their longest word (a rare
    # one, unlike the "i" that starts many), and search the text only for those whose word is there.
    phrases: dict[str, list[str]] = {}
    for term in terms:
        tokens = _TOKEN.findall(term.casefold().replace("’", "'"))
        if len(tokens) == 1:
            words.add(tokens[0])
        else:
            bare = [t.lstrip("#") for t in tokens]
            phrases.setdefault(max(bare, key=len), []).append(" " + " ".join(bare) + " ")
    single = frozenset(words)
    keys = frozenset(phrases)

    def test(f: TextFeatures) -> bool:
        if not single.isdisjoint(f.words):
            return True
        for key in keys.intersection(f.words):
            for phrase in phrases[key]:
                if phrase in f.stream:
                    return True
        return False

    return test


Predicate = Callable[[Mention, Callable[[], TextFeatures]], bool]


class RegexBank:
    """The regexes of a rule set, searched together: one RE2 pass per text instead of one per regex.

    RE2's FilteredRE2 (`re2.Filter`) extracts from each regex the literal strings a match must
    contain, finds which of them occur in the text in one pass, and runs only the regexes that
    can still match. The result is exactly that of searching each regex on its own; it costs
    about as much as one search, whereas a mention that matches nothing used to cost a search
    per regex. Regexes are added while rules are compiled; the first search closes the bank.
    """

    __slots__ = ("_closed", "_filter", "_last_hits", "_last_text", "_size")

    def __init__(self) -> None:
        self._filter = re2.Filter()
        self._size = 0
        self._closed = False
        self._last_text: str | None = None
        self._last_hits: frozenset[int] = frozenset()

    def add(self, pattern: str) -> int:
        """Register a regex (case-insensitive, as rule authors expect); returns its index."""
        if self._closed:
            raise RuntimeError("a RegexBank takes no more regexes once it has searched a text")
        index: int = self._filter.Add(pattern, _re2_options())
        self._size += 1
        return index

    def hits(self, text: str) -> frozenset[int]:
        """Indices of the regexes found in `text` (remembered for the text last asked about)."""
        if text is self._last_text:
            return self._last_hits  # every regex test of one mention asks about the same text
        if not self._closed:
            self._filter.Compile()
            self._closed = True
        found = self._filter.Match(_regex_text(text))
        hits = frozenset(found) if found else frozenset()
        self._last_text, self._last_hits = text, hits
        return hits


def compile_match(match: Match, bank: RegexBank | None = None) -> Predicate:
    """One predicate for a rule's match block; cheap tests first, text tests last.

    Regexes go into `bank` (a new one when not given), so that the regexes of every rule
    sharing the bank are searched in one pass per mention.
    """
    if bank is None:
        bank = RegexBank()
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
        any_test = _any_term_test(match.any)
        tests.append(lambda m, f: any_test(f()))
    if match.none:
        none_test = _any_term_test(match.none)
        tests.append(lambda m, f: not none_test(f()))
    if match.regex:
        wanted = bank.add(match.regex)
        hits = bank.hits
        tests.append(lambda m, f: wanted in hits(m.text))
    if match.none_regex:
        unwanted = bank.add(match.none_regex)
        hits = bank.hits
        tests.append(lambda m, f: unwanted not in hits(m.text))
    if match.any_of:
        tests.append(_compile_any_of(match.any_of, bank))

    if not tests:
        return lambda m, f: True
    if len(tests) == 1:
        return tests[0]
    chain = tuple(tests)

    def passes(m: Mention, f: Callable[[], TextFeatures]) -> bool:
        for t in chain:
            if not t(m, f):
                return False
        return True

    return passes


def _compile_any_of(branches: list[Match], bank: RegexBank) -> Predicate:
    """At least one branch passes. Branches that are only a term list become one term test, and
    branches that are only a regex one look-up in the bank: the answer is the same, in fewer steps."""
    terms: list[str] = []
    regexes: set[int] = set()
    tests: list[Predicate] = []
    for branch in branches:
        given = set(branch.model_dump(exclude_none=True))
        if given == {"any"}:
            terms.extend(branch.any or ())
        elif given == {"regex"}:
            regexes.add(bank.add(branch.regex or ""))
        else:
            tests.append(compile_match(branch, bank))
    if terms:
        any_test = _any_term_test(terms)
        tests.insert(0, lambda m, f: any_test(f()))
    if regexes:
        wanted = frozenset(regexes)
        hits = bank.hits
        tests.append(lambda m, f: not wanted.isdisjoint(hits(m.text)))
    if len(tests) == 1:
        return tests[0]
    chain = tuple(tests)

    def passes_any(m: Mention, f: Callable[[], TextFeatures]) -> bool:
        for t in chain:
            if t(m, f):
                return True
        return False

    return passes_any


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
