"""Rule files as typed, frozen models: what a rule author may write, validated once at load.

The JSON Schema that editors use (`rules/rule.schema.json`) is generated from these models.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from datetime import date
from typing import Annotated, Any, ClassVar, Literal, Optional, Union

import re2
from pydantic import (
    BaseModel, BeforeValidator, ConfigDict, Field, PrivateAttr, WithJsonSchema, field_validator, model_validator,
)

from listener.duration import Duration, format_duration
from listener.rules.classifier import TextModel, load_model
from listener.rules.template import Template, TemplateText

Severity = Literal["info", "low", "medium", "high", "critical"]
SEVERITIES: tuple[str, ...] = ("info", "low", "medium", "high", "critical")
GroupField = Literal["watch", "thread", "author", "hashtag", "platform"]
WatchKind = Literal["account", "hashtag", "query", "post"]
SentimentWord = Literal["negative", "neutral", "positive"]

# Metrics each kind measures; conditions and escalations may test these and no others.
MATCH_METRICS = ("count", "unique_authors", "mean_compound")
WINDOW_METRICS = ("count", "share_negative", "share_positive", "share_neutral", "mean_compound",
                  "unique_authors", "flagged", "share_flagged")
SPIKE_METRICS = WINDOW_METRICS + ("baseline", "baseline_mad", "ratio")
SHIFT_METRICS = WINDOW_METRICS + ("baseline", "baseline_mad", "drop")
FLATLINE_METRICS = ("silent_s", "failing_s", "failed_polls")
METRICS: tuple[str, ...] = tuple(dict.fromkeys(SPIKE_METRICS + SHIFT_METRICS + MATCH_METRICS + FLATLINE_METRICS))
OPERATORS = (">=", "<=", ">", "<", "==", "!=")
_CONDITION = re.compile(r"^\s*([a-z_]+)\s*(>=|<=|==|!=|>|<)\s*(-?\d+(?:\.\d+)?)\s*$")


def severity_rank(severity: str) -> int:
    return SEVERITIES.index(severity)


@dataclass(frozen=True, slots=True)
class Condition:
    """`metric op bound`, e.g. `share_negative >= 0.6`."""

    metric: str
    op: str
    bound: float

    def holds(self, value: float | None) -> bool:
        if value is None:
            return False
        op = self.op
        if op == ">=":
            return value >= self.bound
        if op == "<=":
            return value <= self.bound
        if op == ">":
            return value > self.bound
        if op == "<":
            return value < self.bound
        if op == "==":
            return value == self.bound
        return value != self.bound

    def __str__(self) -> str:
        return f"{self.metric} {self.op} {self.bound:g}"


def _did_you_mean(word: str, choices: tuple[str, ...] | list[str]) -> str:
    guess = difflib.get_close_matches(word, choices, n=1)
    return f", did you mean {guess[0]!r}?" if guess else f" (one of {', '.join(choices)})"


def parse_condition(value: Any) -> Condition:
    if isinstance(value, Condition):
        return value
    if not isinstance(value, str) or not (m := _CONDITION.match(value)):
        raise ValueError(
            f"{value!r} is not a condition: write 'METRIC OP NUMBER', e.g. 'count >= 20', "
            f"with METRIC one of {', '.join(METRICS)}"
        )
    metric, op, bound = m.group(1), m.group(2), float(m.group(3))
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}{_did_you_mean(metric, METRICS)}")
    return Condition(metric, op, bound)


ConditionText = Annotated[
    Condition,
    BeforeValidator(parse_condition),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": r"^\s*(" + "|".join(METRICS) + r")\s*(>=|<=|==|!=|>|<)\s*-?\d+(\.\d+)?\s*$",
            "description": "METRIC OP NUMBER, e.g. 'count >= 20' or 'share_negative >= 0.6'.",
        }
    ),
]


def _check_metrics(conditions: list[Condition], allowed: tuple[str, ...], kind: str) -> None:
    for c in conditions:
        if c.metric not in allowed:
            raise ValueError(f"a {kind} rule does not measure {c.metric!r}; it measures {', '.join(allowed)}")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Classifier(Strict):
    """Passes a post that a text classifier (made by `listener rules train`) scores high enough for a label."""

    model: str = Field(description="The model file, relative to the rule file (e.g. models/posts.json).")
    label: str = Field(description="Which of the model's labels (e.g. crisis).")
    min_score: float = Field(
        0.8, gt=0, lt=1,
        description="The least score that passes, 0..1 (higher: fewer false alarms and fewer posts caught).",
    )
    # The model read for this filter (by the loader, from beside the rule file): the rule's predicate
    # and its alerts' explanations use this one, whatever happens to the file afterwards.
    _model: TextModel | None = PrivateAttr(None)

    def text_model(self) -> TextModel:
        """The model this filter reads: the one the loader read for it, or else `model` read now."""
        if self._model is None:
            self._model = load_model(self.model)
        return self._model

    def located(self, model: TextModel) -> None:
        self._model = model

    @property
    def stamp(self) -> tuple[int, int] | None:
        """The version of the model file read (its modification time and size): a retrained model
        makes a changed rule."""
        return self._model.stamp if self._model is not None else None


class Match(Strict):
    """Which mentions a rule looks at. Every given filter must pass; an empty match takes all."""

    platforms: list[str] | None = Field(None, description="Only these platforms (bluesky, mastodon, x, ...).")
    watches: list[str] | None = Field(None, description="Only mentions found by these watch ids.")
    watch_kinds: list[WatchKind] | None = Field(None, description="Only mentions found by watches of these kinds.")
    sentiment: SentimentWord | None = Field(
        None, description="VADER's class: negative (compound <= -0.05), neutral, positive (>= 0.05)."
    )
    compound_min: float | None = Field(None, ge=-1, le=1, description="Compound score at least this.")
    compound_max: float | None = Field(None, ge=-1, le=1, description="Compound score at most this.")
    any: list[str] | None = Field(
        None, description="At least one of these terms or phrases (case-folded, whole words; #tags and @handles too)."
    )
    all: list[str] | None = Field(None, description="Every one of these terms or phrases.")
    none: list[str] | None = Field(None, description="None of these terms or phrases.")
    regex: str | None = Field(
        None, description="A regular expression found anywhere in the text (RE2: linear time; case-insensitive)."
    )
    none_regex: str | None = Field(None, description="A regular expression that must NOT be found in the text (RE2).")
    langs: list[str] | None = Field(None, description="Only these languages (BCP-47 codes such as en, fr).")
    classifier: Classifier | None = Field(
        None, description="The text reads like one of a trained classifier's labels (see rules/README.md)."
    )
    any_of: list[Match] | None = Field(
        None, description="At least one of these nested filters passes (an OR; each is a full match block)."
    )

    @field_validator("regex", "none_regex")
    @classmethod
    def _regex_compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re2.compile(value)
            except re2.error as exc:
                raise ValueError(f"regex does not compile under RE2: {exc}") from None
        return value

    @field_validator("any", "all", "none")
    @classmethod
    def _terms_not_blank(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and any(not t.strip() for t in value):
            raise ValueError("terms cannot be blank")
        for t in value or ():
            if not re.search(r"\w", t):
                raise ValueError(f"term {t!r} has no letters or digits (match emoji with regex)")
        return value

    @field_validator("any_of")
    @classmethod
    def _any_of_not_empty(cls, value: list[Match] | None) -> list[Match] | None:
        if value is not None and not value:
            raise ValueError("any_of needs at least one filter")
        return value

    def uses_text(self) -> bool:
        """Whether this filter reads the text (terms, regex, classifier), here or in a nested filter."""
        if self.any or self.all or self.none or self.regex or self.none_regex or self.classifier:
            return True
        return bool(self.any_of) and all(m.uses_text() for m in self.any_of or ())

    def classifiers(self) -> list[Classifier]:
        """The classifier filters of this block and its nested ones."""
        found = [self.classifier] if self.classifier is not None else []
        for branch in self.any_of or ():
            found.extend(branch.classifiers())
        return found


class Escalation(Strict):
    """A stronger bound: while it holds, the open episode's severity is raised (never lowered)."""

    severity: Severity = Field(description="The severity the episode is raised to.")
    conditions: list[ConditionText] = Field(min_length=1, description="METRIC OP NUMBER, e.g. 'count >= 40'.")
    combine: Literal["all", "any"] = Field("all", description="Escalate when all (default) or any of them hold.")


class RuleBase(Strict):
    id: str = Field(
        pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$",
        description="Unique id across the rule set; lower case, digits, '-' and '_' (it becomes an MQTT topic level).",
    )
    description: str = Field("", description="What this rule catches, in a sentence.")
    owner: str | None = Field(None, description="Who answers for this rule.")
    purpose: str | None = Field(None, description="Why the comms team wants to hear about this.")
    review_by: date | None = Field(None, description="Review the rule by this date; `rules check` reports it after.")
    enabled: bool = Field(True, description="A disabled rule is loaded and checked but never fires.")
    severity: Severity = Field("medium", description="info, low, medium, high or critical.")
    match: Match = Field(default_factory=Match, description="Which mentions the rule looks at.")
    group_by: list[GroupField] = Field(
        default_factory=list, description="Evaluate separately per watch, thread, author, hashtag and/or platform."
    )
    cooldown: Duration = Field(
        1800.0,
        description="After a notification for a group, stay quiet this long (escalations and resolutions excepted).",
    )
    resolve_after: Duration = Field(
        0.0, description="The condition must stay false this long before a 'resolved' message is sent."
    )
    escalate: list[Escalation] = Field(
        default_factory=list,
        description="Stronger bounds that raise the severity of the open episode (an update is sent at once).",
    )
    title: TemplateText = Field(
        Template.parse("{rule}: {group}"), description="Alert title template; named fields only, e.g. {count}."
    )
    message: TemplateText = Field(
        Template.parse("{count} mentions in {window}"), description="Alert summary template; named fields only."
    )
    labels: dict[str, str] = Field(default_factory=dict, description="Free key/value labels copied into every alert.")
    route: str | None = Field(
        None, pattern=r"^[a-z0-9][a-z0-9_-]*$", description="A sub-topic to route this rule's alerts apart (e.g. tips)."
    )

    # The metrics this kind measures (for conditions and escalations).
    METRICS: ClassVar[tuple[str, ...]] = ()

    @field_validator("group_by")
    @classmethod
    def _no_repeats(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("group_by lists a field twice")
        return value

    @model_validator(mode="after")
    def _escalations_are_stronger(self) -> RuleBase:
        for step in self.escalate:
            _check_metrics(step.conditions, self.METRICS, getattr(self, "kind", "rule"))
            if severity_rank(step.severity) <= severity_rank(self.severity):
                raise ValueError(
                    f"escalate: severity {step.severity!r} is not above the rule's severity {self.severity!r}")
        return self

    @property
    def needs_history_s(self) -> float:
        """How much event time the rule must have seen before it may fire (0: none)."""
        return 0.0

    def classifiers(self) -> list[Classifier]:
        """Every classifier filter the rule asks, in its match block and its flag filter."""
        flag: Match | None = getattr(self, "flag", None)
        return self.match.classifiers() + (flag.classifiers() if flag is not None else [])


class MatchRule(RuleBase):
    """Fires on a single mention that passes the filter: crisis language, threats, tips."""

    METRICS = MATCH_METRICS
    kind: Literal["match"] = "match"
    resolve_after: Duration = Field(
        3600.0, description="The episode resolves after this long without another matching mention."
    )
    message: TemplateText = Field(Template.parse("{sample_text}"), description="Alert summary template.")


class WindowRule(RuleBase):
    """Shared by the kinds that measure a sliding window of matching mentions."""

    window: Duration = Field(description="The sliding window, in event time: 30m, 2h, ...")
    flag: Match | None = Field(
        None,
        description="Which of the matching mentions count as flagged (e.g. hostile), for the flagged and "
                    "share_flagged metrics.",
    )

    @model_validator(mode="after")
    def _window_positive(self) -> WindowRule:
        if self.window <= 0:
            raise ValueError("window must be longer than 0s")
        return self

    def _check_flag_metrics(self, conditions: list[Condition]) -> None:
        if self.flag is None:
            for c in conditions:
                if c.metric in ("flagged", "share_flagged"):
                    raise ValueError(f"the metric {c.metric!r} needs a 'flag' filter on the rule")


class ThresholdRule(WindowRule):
    """Fires when window metrics of the matching mentions cross bounds, per group."""

    METRICS = WINDOW_METRICS
    kind: Literal["threshold"] = "threshold"
    conditions: list[ConditionText] = Field(min_length=1, description="METRIC OP NUMBER, e.g. 'count >= 20'.")
    combine: Literal["all", "any"] = Field("all", description="Fire when all (default) or any of the conditions hold.")

    @model_validator(mode="after")
    def _metrics_known(self) -> ThresholdRule:
        _check_metrics(self.conditions, WINDOW_METRICS, "threshold")
        self._check_flag_metrics(self.conditions + [c for s in self.escalate for c in s.conditions])
        return self


class Baseline(Strict):
    """What the recent window is compared with."""

    type: Literal["trailing", "seasonal"] = Field(
        "trailing",
        description="trailing: the period just before the window; seasonal: the same hour of the week in past weeks.",
    )
    period: Duration = Field(86400.0, description="trailing: how far back the baseline reaches (default 24h).")
    weeks: int = Field(4, ge=1, le=8, description="seasonal: how many past weeks to compare with (default 4).")
    min_weeks: int = Field(
        2, ge=1, le=8, description="seasonal: fewer weeks of history than this and the rule stays quiet."
    )

    @model_validator(mode="after")
    def _consistent(self) -> Baseline:
        if self.period <= 0:
            raise ValueError("period must be longer than 0s")
        if self.min_weeks > self.weeks:
            raise ValueError("min_weeks cannot be more than weeks")
        return self

    def span_s(self, window_s: float) -> float:
        """How far back, before now, the baseline reads."""
        if self.type == "trailing":
            return window_s + self.period
        return self.weeks * 604800.0 + window_s

    def needs_s(self, window_s: float) -> float:
        """Event time the engine must have seen before the baseline means anything."""
        if self.type == "trailing":
            return window_s + self.period
        return self.min_weeks * 604800.0 + window_s

    def describe(self) -> str:
        if self.type == "trailing":
            return f"over the preceding {format_duration(self.period)}"
        return f"median of the same hours in the last {self.weeks} weeks"


class BaselineRule(WindowRule):
    """Shared by the kinds that compare the window with a baseline."""

    baseline: Baseline = Field(default_factory=Baseline, description="What the window is compared with.")

    @model_validator(mode="after")
    def _seasonal_window(self) -> BaselineRule:
        if self.baseline.type == "seasonal" and self.window > 86400:
            raise ValueError("a seasonal baseline needs a window of at most 1d")
        if self.baseline.type == "trailing" and self.baseline.period < self.window:
            raise ValueError("baseline.period must be at least as long as the window")
        self._check_flag_metrics([c for s in self.escalate for c in s.conditions])
        return self

    @property
    def needs_history_s(self) -> float:
        return self.baseline.needs_s(self.window)


class SpikeRule(BaselineRule):
    """Fires when the window's volume is `factor` times its baseline and at least `min_count`."""

    METRICS = SPIKE_METRICS
    kind: Literal["spike"] = "spike"
    factor: float = Field(3.0, gt=1, description="The window must hold at least this many times the baseline volume.")
    min_count: int = Field(10, ge=1, description="...and at least this many mentions.")
    min_mads: float = Field(
        3.0, ge=0,
        description="seasonal: ...and at least this many median absolute deviations above the baseline (0: off).",
    )


class SentimentShiftRule(BaselineRule):
    """Fires when the window's mean compound falls `drop` below its baseline mean."""

    METRICS = SHIFT_METRICS
    kind: Literal["sentiment_shift"] = "sentiment_shift"
    drop: float = Field(gt=0, le=2, description="How far the mean compound must fall below the baseline (0..2).")
    min_count: int = Field(20, ge=1, description="Mentions the window must hold before its mean counts.")
    min_baseline_count: int = Field(
        50, ge=1, description="Mentions the baseline must hold before its mean counts (else: not enough history)."
    )
    message: TemplateText = Field(
        Template.parse("mean sentiment {mean_compound:+.2f} against {baseline:+.2f} usually, over {count} mentions "
                       "in {window}"),
        description="Alert summary template; named fields only.",
    )


class FlatlineRule(RuleBase):
    """A health alert: a watch or platform went silent, or every poll of it failed, for a while."""

    METRICS = FLATLINE_METRICS
    kind: Literal["flatline"] = "flatline"
    silent_for: Optional[Duration] = Field(
        None, description="Fire when no matching mention arrived for this long."
    )
    failing_for: Optional[Duration] = Field(
        None, description="Fire when every poll in this long failed (needs the daemon's poll reports)."
    )
    message: TemplateText = Field(
        Template.parse("{group}: nothing for {silent}, polls failing for {failing} ({failed_polls} failed); "
                       "last error: {last_error}"),
        description="Alert summary template; named fields only.",
    )

    @model_validator(mode="after")
    def _flatline_shape(self) -> FlatlineRule:
        if self.silent_for is None and self.failing_for is None:
            raise ValueError("a flatline rule needs silent_for, failing_for or both")
        for value in (self.silent_for, self.failing_for):
            if value is not None and value <= 0:
                raise ValueError("silent_for and failing_for must be longer than 0s")
        if set(self.group_by) - {"watch", "platform"}:
            raise ValueError("a flatline rule can only group_by watch and/or platform")
        m = self.match
        if m.uses_text() or m.sentiment or m.compound_min is not None or m.compound_max is not None or m.langs \
                or m.any_of:
            raise ValueError("a flatline rule's match can only use platforms, watches and watch_kinds")
        return self


AnyRule = Union[MatchRule, ThresholdRule, SpikeRule, SentimentShiftRule, FlatlineRule]
Rule = Annotated[AnyRule, Field(discriminator="kind")]
KINDS: tuple[type[RuleBase], ...] = (MatchRule, ThresholdRule, SpikeRule, SentimentShiftRule, FlatlineRule)


class RuleFile(Strict):
    """One YAML file of rules."""

    rules: list[Rule] = Field(description="The rules in this file.")
