"""The most frequent meaningful terms in a set of texts, to say what an alert is about."""

from __future__ import annotations

import re
from collections import Counter
from functools import lru_cache
from typing import Iterable

_WORD = re.compile(r"[#@]?[^\W\d_][\w'’\-]{2,}")
# Function words and social-media noise that never explain an alert.
STOPWORDS = frozenset(
    """
    the and for are but not you your yours with this that these those was were have has had
    from they them their there then than what when where which who whom why how all any can
    could would should will just into onto over under about after before again also been being
    our ours out off own very too its it's i'm im you're he's she's we're they're that's there's
    don't doesn't didn't isn't aren't wasn't can't won't shouldn't wouldn't couldn't
    one two get got going gonna make made more most much many some such only even ever every
    here him his her hers she he we us me my mine myself who's let's really still yet via amp rt
    i've ive i'd i'll
    like just lol omg http https www com
    """.split()
)


def top_terms(texts: Iterable[str], n: int = 5, exclude: set[str] | None = None) -> list[str]:
    counts: Counter[str] = Counter()
    skip = exclude or set()
    for text in texts:
        for word, bare in _terms(text):
            if bare not in skip:
                counts[word] += 1  # documents containing the word, not raw frequency
    return [w for w, c in counts.most_common(n) if c > 1] or [w for w, _ in counts.most_common(min(n, 3))]


@lru_cache(maxsize=1024)
def _terms(text: str) -> tuple[tuple[str, str], ...]:
    """The meaningful words of one text, each once, in order, with its form without '#'. Remembered:
    an episode's alerts take their terms from much the same mentions, one alert after another."""
    seen: dict[str, str] = {}
    for raw in _WORD.findall(text.casefold()):
        word = raw.replace("’", "'").strip("'-")
        bare = word.lstrip("#")
        if raw[0] == "@" or bare in STOPWORDS or word in seen or len(word) < 3:
            continue
        seen[word] = bare
    return tuple(seen.items())
