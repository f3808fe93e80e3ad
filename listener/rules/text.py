"""A mention's text as the filters and classifiers read it: its words, in order, and its hashtags."""

from __future__ import annotations

import re
from typing import Callable, NamedTuple

from listener.mention import Mention

# A token: an optional # or @, then word characters joined by . ' ’ or - (handles, contractions).
TOKEN = re.compile(r"[#@]?\w+(?:[.'’\-]\w+)*")


class TextFeatures(NamedTuple):
    """What term filters and hashtag grouping need from a text, computed once per mention (a tuple:
    made for nearly every mention, and a frozen dataclass takes twice as long to make)."""

    words: frozenset[str]  # tokens as written (#tag, @handle, word) plus the bare form of hashtags
    stream: str  # " w1 w2 ... " for phrase search, hashtags without their '#'
    hashtags: tuple[str, ...]  # case-folded, without '#', in order of first appearance
    sequence: list[str]  # the words of `stream`, in order (what `stream.split()` gives; not to be changed)


def features(text: str) -> TextFeatures:
    folded = text.casefold()
    if "’" in folded:
        folded = folded.replace("’", "'")
    tokens = tokens_of(folded)
    stream = " " + " ".join(tokens) + " "
    if "#" not in folded:  # no hashtags: the tokens are the words, the stream is them in order
        return TextFeatures(frozenset(tokens), stream, (), tokens)
    # '#' can only start a token, so dropping every '#' from the stream leaves the bare tags.
    tags = [tok[1:] for tok in tokens if tok[0] == "#"]
    return TextFeatures(frozenset(tokens + tags), stream.replace("#", ""), tuple(dict.fromkeys(tags)),
                        [tok[1:] if tok[0] == "#" else tok for tok in tokens])


# Characters that never belong to a token (not \w) and often end a written word: "thanks!", "station,".
_TRAILING = ".,!?:;)\"'’…-"


def tokens_of(folded: str) -> list[str]:
    r"""`TOKEN.findall(folded)`, faster: no token spans white space, and most words are letters and
    digits only (`str.isalnum()` is what `\w` means, but for "_"), perhaps with punctuation after
    them; the regex reads only the other words. (tests/test_filters.py compares the two.)"""
    tokens: list[str] = []
    for chunk in folded.split():
        word = chunk.rstrip(_TRAILING)
        if word.isalnum() or (len(word) > 1 and word[0] in "#@" and word[1:].isalnum()):
            tokens.append(word)
        elif word:
            tokens.extend(TOKEN.findall(chunk))
    return tokens


def lazy_features(m: Mention) -> Callable[[], TextFeatures]:
    """The features of `m`'s text, computed on the first call (most mentions never need them)."""
    cached: TextFeatures | None = None

    def feats() -> TextFeatures:
        nonlocal cached
        if cached is None:
            cached = features(m.text)
        return cached

    return feats
