"""Rule files as typed, frozen models: what a rule author may write, validated once at load.

The JSON Schema that editors use (`rules/rule.schema.json`) is generated from these models.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import Annotated, Any, Literal, Union

import re2
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema, field_validator, model_validator

from listener.duration import Duration
from listener.rules.template import Template, TemplateText

Severity = Literal["info", "low", "medium", "high", "critical"]
SEVERITIES: tuple[str, ...] = ("info", "low", "medium", "high", "critical")
GroupField = Literal["watch", "thread", "author", "hashtag", "platform"]
WatchKind = Literal["account", "hashtag", "query", "post"]
SentimentWord = Literal["negative", "neutral", "positive"]

# Window metrics a threshold condition may test.
METRICS = ("count", "share_negative", "share_positive", "share_neutral", "mean_compound", "unique_authors")
OPERATORS = (">=", "<=", ">", "<", "==", "!=")
_CONDITION = re.compile(r"^\s*([a-z_]+)\s*(>=|<=|==|!=|>|<)\s*(-?\d+(?:\.\d+)?)\s*$")


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
        import difflib

        guess = difflib.get_close_matches(metric, METRICS, n=1)
        hint = f", did you mean {guess[0]!r}?" if guess else f" (one of {', '.join(METRICS)})"
        raise ValueError(f"unknown metric {metric!r}{hint}")
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


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


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
    regex: str | None = Field(None, description="A regular expression (RE2 syntax: linear time, no backreferences).")
    langs: list[str] | None = Field(None, description="Only these languages (BCP-47 codes such as en, fr).")

    @field_validator("regex")
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
        return value


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
        1800.0, description="After a notification for a group, stay quiet this long (escalations and resolutions excepted)."
    )
    resolve_after: Duration = Field(
        0.0, description="The condition must stay false this long before a 'resolved' message is sent."
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

    @field_validator("group_by")
    @classmethod
    def _no_repeats(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("group_by lists a field twice")
        return value


class MatchRule(RuleBase):
    """Fires on a single mention that passes the filter: crisis language, threats, tips."""

    kind: Literal["match"] = "match"
    resolve_after: Duration = Field(
        3600.0, description="The episode resolves after this long without another matching mention."
    )
    message: TemplateText = Field(Template.parse("{sample_text}"), description="Alert summary template.")


class ThresholdRule(RuleBase):
    """Fires when window metrics of the matching mentions cross bounds, per group."""

    kind: Literal["threshold"] = "threshold"
    window: Duration = Field(description="The sliding window, in event time: 30m, 2h, ...")
    conditions: list[ConditionText] = Field(min_length=1, description="METRIC OP NUMBER, e.g. 'count >= 20'.")
    combine: Literal["all", "any"] = Field("all", description="Fire when all (default) or any of the conditions hold.")

    @model_validator(mode="after")
    def _window_positive(self) -> ThresholdRule:
        if self.window <= 0:
            raise ValueError("window must be longer than 0s")
        return self


Rule = Annotated[Union[MatchRule, ThresholdRule], Field(discriminator="kind")]


class RuleFile(Strict):
    """One YAML file of rules."""

    rules: list[Rule] = Field(description="The rules in this file.")
