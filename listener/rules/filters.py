"""Match filters compiled once into predicates."""

from __future__ import annotations

from typing import Any, Callable

import re2

from listener.mention import Mention
from listener.rules.model import Classifier, Match
from listener.rules.terms import STOPWORDS
from listener.rules.text import TOKEN, TextFeatures, features


def _term_tokens(term: str) -> list[str]:
    """A rule's term as the tokens `features()` makes of a text: case-folded, straight apostrophes."""
    return TOKEN.findall(term.casefold().replace("’", "'"))


def _term_test(term: str) -> Callable[[TextFeatures], bool]:
    """A term is a word, a #tag, an @handle or a phrase of several words."""
    tokens = _term_tokens(term)
    if len(tokens) == 1:
        token = tokens[0]
        return lambda f: token in f.words
    phrase = _phrase([t.lstrip("#") for t in tokens])
    return lambda f: phrase in f.stream


def _phrase(bare: list[str]) -> str:
    """A phrase's words as `TextFeatures.stream` holds them, to find it with one `in`."""
    return " " + " ".join(bare) + " "


def _key_word(bare: list[str]) -> str:
    """The word of a phrase to index it by, the rarest we can tell: not a common word ("i", "the",
    "my"), then the longest. A phrase occurs only where each of its words does."""
    return min(bare, key=lambda t: (_common(t), -len(t)))


def _any_term_test(terms: list[str]) -> Callable[[TextFeatures], bool]:
    """Whether any of many terms occurs, in a few set operations rather than one test per term."""
    words: set[str] = set()
    # Index phrases by a rare word of theirs (`_key_word`), and search the text only for those
    # whose word is there.
    phrases: dict[str, list[str]] = {}
    for term in terms:
        tokens = _term_tokens(term)
        if len(tokens) == 1:
            words.add(tokens[0])
        else:
            bare = [t.lstrip("#") for t in tokens]
            phrases.setdefault(_key_word(bare), []).append(_phrase(bare))
    single = frozenset(words)
    keys = frozenset(phrases)
    either = single | keys

    def test(f: TextFeatures) -> bool:
        found = f.words
        if either.isdisjoint(found):
            return False  # most texts: one set operation
        if not single.isdisjoint(found):
            return True
        for key in keys.intersection(found):
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

    __slots__ = ("_closed", "_filter", "_last_hits", "_last_text", "_match", "_patterns")

    def __init__(self) -> None:
        self._filter = re2.Filter()
        # The binding's own Match, which takes UTF-8 bytes (the wrapper's encodes them for it, in a
        # Python frame per call); the wrapper's where the binding is not where it was.
        low: Any = getattr(self._filter, "_filter", None)
        self._match: Callable[[str], list[int] | None] = (
            (lambda text: low.Match(text.encode("utf-8"), False)) if hasattr(low, "Match") else self._filter.Match)
        self._patterns: dict[str, int] = {}
        self._closed = False
        self._last_text: str | None = None
        self._last_hits: frozenset[int] = frozenset()

    def add(self, pattern: str) -> int:
        """Register a regex (case-insensitive, as rule authors expect); returns its index. A pattern
        several rules use (a YAML anchor) is searched once, under one index."""
        index = self._patterns.get(pattern)
        if index is not None:
            return index
        if self._closed:
            raise RuntimeError("a RegexBank takes no more regexes once it has searched a text")
        added: int = self._filter.Add(pattern, _re2_options())
        self._patterns[pattern] = added
        return added

    def indices(self, pattern: str) -> frozenset[int]:
        """The index under which `pattern` was added, as a set (empty if it was not)."""
        index = self._patterns.get(pattern)
        return frozenset() if index is None else frozenset((index,))

    def hits(self, text: str) -> frozenset[int]:
        """Indices of the regexes found in `text` (remembered for the text last asked about)."""
        if text is self._last_text:
            return self._last_hits  # every regex test of one mention asks about the same text
        if not self._closed:
            self._filter.Compile()
            self._closed = True
        found = self._match(_regex_text(text))
        hits = frozenset(found) if found else frozenset()
        self._last_text, self._last_hits = text, hits
        return hits


def take_all(m: Mention, f: Callable[[], TextFeatures]) -> bool:
    """The predicate of an empty match block (the engine skips calling it)."""
    return True


def compile_match(match: Match, bank: RegexBank | None = None, indexed: bool = True) -> Predicate:
    """One predicate for a rule's match block; cheap tests first, text tests last.

    Regexes go into `bank` (a new one when not given), so that the regexes of every rule
    sharing the bank are searched in one pass per mention. `indexed`: the branches of an
    `any_of` are looked up by the words they need (see `_compile_any_of`); False tries each in
    turn, for tests to compare with.
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
    if match.classifier is not None:
        # Before the term tests: most texts fail it, and its score is computed once per mention for
        # every rule that asks the same model (crisis, threats, tips), while each term test is the rule's own.
        model = match.classifier.text_model()
        label, least = model.label_index(match.classifier.label), match.classifier.min_score
        scores = model.scores
        tests.append(lambda m, f: scores(f())[label] >= least)
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
        tests.append(_compile_any_of(match.any_of, bank, indexed))

    if not tests:
        return take_all
    if len(tests) == 1:
        return tests[0]
    chain = tuple(tests)

    def passes(m: Mention, f: Callable[[], TextFeatures]) -> bool:
        for t in chain:
            if not t(m, f):
                return False
        return True

    return passes


# What a text must contain for a match block to pass: one of these words, or a hit of one of these
# regexes (indices in the engine's RegexBank). None: the block can pass on any text.
Need = tuple[frozenset[str], frozenset[int]]


def text_need(match: Match, bank: RegexBank) -> Need | None:
    """A cheap necessary condition on a mention's text for `match` to pass (call after compile_match).

    Term lists are searched through the words of the text, so a term list that shares no word
    with a text cannot pass; a regex cannot pass without its hit. The engine tests this with one
    set operation per rule, before the rule's predicate: crisis, threat and tip rules are ruled
    out on most mentions without running their filters. The answer never differs from the
    predicate's (tests/test_filters.py). Of several necessary conditions this takes the one with
    the fewest common words; `need_choices` offers them all, for the engine to learn the rarest.
    """
    candidates = _candidates(match, bank)
    return min(candidates, key=_rank) if candidates else None


def need_choices(match: Match, bank: RegexBank) -> list[list[Need]] | None:
    """Every way to rule a text out before `match` runs, grouped for choosing.

    One list per slot, each a list of alternatives that are all necessary for that slot, best
    first as far as can be told without the stream (`_rank`); a text can pass only if it meets
    the need chosen for at least one slot, whichever is chosen. A block
    that is only an `any_of` (the usual shape of a text rule) has a slot per branch, so that each
    branch is ruled out by whichever of its lists is rarest: "a police word and a violent act"
    by the act, not by "police", in a stream about the police. Otherwise there is one slot, the
    block's own alternatives. None: the block can pass on any text.
    """
    top = _candidates(match, bank)
    if not top:
        return None
    slots = [top]
    if match.any_of and not (match.any or match.all or match.regex):
        branches = [_candidates(branch, bank) for branch in match.any_of]
        if all(branches):  # (always, when the block has a need through its any_of)
            slots = branches
    return [sorted(slot, key=_rank) for slot in slots]


def split_free(match: Match, bank: RegexBank) -> tuple[Match, Match] | None:
    """A block whose `any_of` has branches any text may pass (a classifier reads every text) beside
    branches that need words: the block with only the branches that need words, and the block with
    only the others. None for any other block.

    A text that meets no need of the first passes the whole block exactly when it passes the
    second: the engine rules out most texts by their words and asks only the free branches about them."""
    if not match.any_of or match.any or match.all or match.regex:
        return None
    needs = [(b, text_need(b, bank)) for b in match.any_of]
    needing = [b for b, need in needs if need is not None]
    free = [b for b, need in needs if need is None]
    if not needing or not free:
        return None
    return match.model_copy(update={"any_of": needing}), match.model_copy(update={"any_of": free})


def compile_free(match: Match, bank: RegexBank) -> Predicate:
    """The second block of `split_free` (its free branches), for texts that meet no need of the
    first, as the engine asks it (where the mention was found is already known): the branches
    first, then the block's other filters, since nearly every text fails the branches."""
    assert match.any_of
    branches = _compile_any_of(match.any_of, bank)
    others = compile_match(match.model_copy(update={"any_of": None, **dict.fromkeys(PLACE)}), bank)
    if others is take_all:
        return branches
    return lambda m, f: branches(m, f) and others(m, f)


def choose_need(slots: list[list[Need]], picks: list[int] | None = None) -> Need:
    """The need of a rule: the union of one alternative per slot (by default the first of each)."""
    words: set[str] = set()
    regexes: set[int] = set()
    for i, slot in enumerate(slots):
        need = slot[picks[i] if picks is not None else 0]
        words |= need[0]
        regexes |= need[1]
    return frozenset(words), frozenset(regexes)


def _candidates(match: Match, bank: RegexBank) -> list[Need]:
    """The necessary conditions of one block, each alone enough to rule a text out."""
    candidates: list[Need] = []
    if match.any:
        words = _needed_words(match.any)
        if words is not None:
            candidates.append((words, frozenset()))
    for term in match.all or ():
        words = _needed_words([term])
        if words is not None:
            candidates.append((words, frozenset()))
    if match.regex:
        candidates.append((frozenset(), bank.indices(match.regex)))
    if match.any_of:
        all_words: set[str] = set()
        all_regexes: set[int] = set()
        for branch in match.any_of:
            need = text_need(branch, bank)
            if need is None:
                break
            all_words |= need[0]
            all_regexes |= need[1]
        else:
            candidates.append((frozenset(all_words), frozenset(all_regexes)))
    return candidates


def _rank(need: Need) -> tuple[int, int]:
    """Without knowing the stream, the better need has the fewer common words, then the fewer words."""
    return sum(_common(w) for w in need[0]), len(need[0])


def _common(word: str) -> bool:
    """A word too common to rule much out ("this", "my", "i")."""
    return len(word) < 3 or word in STOPWORDS


def _needed_words(terms: list[str]) -> frozenset[str] | None:
    """Words of which a text must contain one for any of `terms` to occur (a phrase: its rarest word)."""
    words = set()
    for term in terms:
        tokens = _term_tokens(term)
        if not tokens:
            return None  # (a term with no word characters, such as an emoji: not searched by word)
        bare = [t.lstrip("#") for t in tokens] if len(tokens) > 1 else tokens
        words.add(_key_word(bare))
    return frozenset(words)


def _compile_any_of(branches: list[Match], bank: RegexBank, indexed: bool = True) -> Predicate:
    """At least one branch passes. Branches that are only a term list become one term test, and
    branches that are only a regex one look-up in the bank: the answer is the same, in fewer steps.
    The other branches are tried only if the text has what each needs (`text_need`): a rule of
    twenty ways to say it ("a plan and a date", "a place and a goodbye", ...) tries the two or
    three whose rare words the text holds, not all twenty."""
    terms: list[str] = []
    regexes: set[int] = set()
    tests: list[Predicate] = []
    needs: list[Need | None] = []
    for branch in branches:
        given = set(branch.model_dump(exclude_none=True))
        if given == {"any"}:
            terms.extend(branch.any or ())
        elif given == {"regex"}:
            regexes.add(bank.add(branch.regex or ""))
        else:
            tests.append(compile_match(branch, bank, indexed))
            needs.append(text_need(branch, bank))
    if indexed and sum(need is not None for need in needs) >= 2:
        tests = [_indexed_branches(tests, needs, bank)]
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


def _indexed_branches(tests: list[Predicate], needs: list[Need | None], bank: RegexBank) -> Predicate:
    """Whether any of `tests` passes, trying only those whose need the text meets, in their order."""
    by_word: dict[str, set[int]] = {}
    by_regex: dict[int, set[int]] = {}
    always: set[int] = set()
    for i, need in enumerate(needs):
        if need is None:
            always.add(i)
            continue
        for word in need[0]:
            by_word.setdefault(word, set()).add(i)
        for regex in need[1]:
            by_regex.setdefault(regex, set()).add(i)
    words = frozenset(by_word)
    regexes = frozenset(by_regex)
    hits = bank.hits
    chain = tuple(tests)

    def passes_indexed(m: Mention, f: Callable[[], TextFeatures]) -> bool:
        tried = set(always)
        for word in words.intersection(f().words):
            tried |= by_word[word]
        if regexes:
            for regex in regexes.intersection(hits(m.text)):
                tried |= by_regex[regex]
        for i in sorted(tried):
            if chain[i](m, f):
                return True
        return False

    return passes_indexed


Explainer = Callable[[Mention], list[str]]


def compile_explainer(*blocks: Match | None) -> Explainer | None:
    """What in a mention's text made it pass these blocks: the rule's terms and phrases found, and
    the text each regex matched. For the examples in an alert, so that a reader sees at once why a
    post counted (and whether it is a false alarm). None when the blocks test no text.

    Only branches of `any_of` that the mention passes are reported; `none` lists are exclusions
    and never reported, nor are function words a rule may require as context ("I", "my").
    Alerts are rare, so this runs only when one is built, never per mention.
    """
    parts = [_explain_block(b) for b in blocks if b is not None and _tests_text(b)]
    if not parts:
        return None
    # An episode's alerts show much the same mentions one after another: remember what was found in
    # each, by all that filters look at (its text and where it was found, its language and score;
    # a filter on another field of a mention must add that field to the key).
    found_in: dict[tuple[object, ...], list[str]] = {}

    def explain(m: Mention) -> list[str]:
        key = (m.text, m.platform, m.watch, m.watch_kind, m.lang, m.compound)
        known = found_in.get(key)
        if known is None:
            if len(found_in) >= 256:
                found_in.clear()
            known = found_in[key] = explain_now(m)
        return list(known)

    def explain_now(m: Mention) -> list[str]:
        feats = features(m.text)
        found: list[str] = []
        for part in parts:
            found.extend(part(m, feats))
        # Function words ("I", "my") are context a rule may require, never what a post is about.
        unique = [a for a in dict.fromkeys(found)
                  if not (len(a) == 1 and a.isalnum()) and a.casefold() not in STOPWORDS]
        # "end it all" says nothing "going to end it all" does not.
        kept = [a for a in unique if not any(a != b and a.casefold() in b.casefold() for b in unique)]
        # In the order they occur in the post, so that the list reads along with it.
        text = _regex_text(m.text).casefold()
        return sorted(kept, key=lambda a: (text.find(a.casefold()) % (len(text) + 1)))

    return explain


def _tests_text(block: Match) -> bool:
    return bool(block.any or block.all or block.regex or block.classifier
                or any(_tests_text(b) for b in block.any_of or ()))


def _explain_block(block: Match) -> Callable[[Mention, TextFeatures], list[str]]:
    terms = [(term, _term_test(term)) for term in [*(block.all or ()), *(block.any or ())]]
    search = _regex_search(block.regex) if block.regex else None
    branches = [(compile_match(b), _explain_block(b)) for b in block.any_of or ()]
    reads_like = _classifier_words(block.classifier) if block.classifier is not None else None

    def explain(m: Mention, feats: TextFeatures) -> list[str]:
        found = [term for term, test in terms if test(feats)]
        if search is not None:
            found.extend(search(m.text))
        if reads_like is not None:
            found.extend(reads_like(feats))
        for passes, inner in branches:
            if passes(m, lambda: feats):
                found.extend(inner(m, feats))
        return found

    return explain


_PLACEHOLDERS = frozenset({"@", "#", "0"})


def _classifier_words(classifier: Classifier, limit: int = 3) -> Callable[[TextFeatures], list[str]]:
    """The words and word pairs that did most to make a classifier's label pass, and the score:
    "pills", "tonight", "crisis 0.93"."""
    model = classifier.text_model()
    label, least = classifier.label, classifier.min_score

    def reads_like(feats: TextFeatures) -> list[str]:
        score = model.score(feats, label)
        if score < least:
            return []
        # (not a handle, hashtag or number: those stand for any, so "@ you" would say nothing to a reader)
        top = [c.gram for c in model.contributions(feats, label)
               if c.weight > 0 and _PLACEHOLDERS.isdisjoint(c.gram.split())]
        return [*top[:limit], f"{label} {score:.2f}"]

    return reads_like


def _regex_search(pattern: str, limit: int = 5) -> Callable[[str], list[str]]:
    """The texts a regex matches (the first `limit`), each with its spaces tidied."""
    regex = re2.compile(pattern, _re2_options())

    def search(text: str) -> list[str]:
        found = []
        for hit in regex.finditer(_regex_text(text)):
            if hit.group(0).strip():
                found.append(" ".join(hit.group(0).split()))
                if len(found) == limit:
                    break
        return found

    return search


# The filters that depend only on where a mention was found, not on what it says.
PLACE = ("platforms", "watches", "watch_kinds", "langs")
Place = tuple[str, "str | None", "str | None", "str | None"]


def place_of(m: Mention) -> Place:
    """Where a mention was found: all that the filters in PLACE look at (platform, watch, kind, language)."""
    return m.platform, m.watch, m.watch_kind, m.lang


def split_place(match: Match, bank: RegexBank) -> tuple[Predicate | None, Predicate]:
    """A match block as two predicates that pass together exactly when it does: the filters of where
    a mention was found (None: none given), whose verdict is the same for every mention of one
    place (the engine asks once per place), and the rest."""
    rest = compile_match(match.model_copy(update=dict.fromkeys(PLACE)), bank)
    if not any(getattr(match, name) for name in PLACE):
        return None, rest
    return compile_match(Match.model_validate({name: getattr(match, name) for name in PLACE})), rest


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
