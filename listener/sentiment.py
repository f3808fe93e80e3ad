"""Sentiment scoring with VADER, plus the organisation's own lexicon overrides."""

from __future__ import annotations

from typing import Iterable, Mapping

from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from listener.mention import Mention, Sentiment

# VADER's lexicon rates words from -4 (most negative) to +4 (most positive).
VALENCE_MIN = -4.0
VALENCE_MAX = 4.0


class SentimentScorer:
    """Scores texts with VADER; `lexicon` entries replace or extend VADER's own word ratings.

    A police service's vocabulary differs from a tweet corpus: "arrest" or "suspect" is
    routine news, not a complaint. Overrides are applied on top of VADER's lexicon, so a
    scorer with none scores exactly as the vaderSentiment package does.
    """

    def __init__(self, lexicon: Mapping[str, float] | None = None) -> None:
        self._analyzer = SentimentIntensityAnalyzer()
        self.overrides: dict[str, float] = {}
        for word, valence in (lexicon or {}).items():
            value = float(valence)
            if not VALENCE_MIN <= value <= VALENCE_MAX:
                raise ValueError(f"lexicon valence for {word!r} must be between -4 and 4, got {value}")
            # VADER looks words up lower-cased.
            self.overrides[word.lower()] = value
        self._analyzer.lexicon.update(self.overrides)

    def score(self, text: str) -> Sentiment:
        s = self._analyzer.polarity_scores(text)
        return Sentiment(s["compound"], s["pos"], s["neu"], s["neg"])

    def score_mentions(self, mentions: Iterable[Mention]) -> list[Mention]:
        """The same mentions with their sentiment filled in."""
        score = self.score
        return [m.with_sentiment(score(m.text)) for m in mentions]
