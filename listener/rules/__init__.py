"""The rule language and its engine: typed rule models, a YAML loader, and the pure evaluator."""

from listener.rules.engine import Engine
from listener.rules.loader import RuleSet, load_rules
from listener.rules.model import (
    FlatlineRule, MatchRule, RuleBase, SentimentShiftRule, SpikeRule, ThresholdRule,
)

__all__ = ["Engine", "FlatlineRule", "MatchRule", "RuleBase", "RuleSet", "SentimentShiftRule", "SpikeRule",
           "ThresholdRule", "load_rules"]
