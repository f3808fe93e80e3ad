"""Sentiment: the real VADER, with lexicon overrides applied on top."""

from __future__ import annotations

import pytest
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from listener.sentiment import SentimentScorer


def test_without_overrides_scores_equal_vader():
    vader = SentimentIntensityAnalyzer()
    scorer = SentimentScorer()
    for text in ("Great work, thank you!", "This is a disgrace.", "The station opens at 9.", "not bad :)"):
        assert scorer.score(text).compound == vader.polarity_scores(text)["compound"]


def test_overrides_change_the_score_of_domain_words():
    plain = SentimentScorer()
    domain = SentimentScorer({"Cringe": -2.0})
    text = "cringe video"
    assert plain.score(text).compound == 0.0
    assert domain.score(text).compound < -0.3
    # One scorer's overrides never leak into another's lexicon.
    assert SentimentScorer().score(text).compound == 0.0


def test_override_out_of_range_is_rejected():
    with pytest.raises(ValueError, match="between -4 and 4"):
        SentimentScorer({"awful": -9})
