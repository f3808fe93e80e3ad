"""Alert text templates: `{name}` and `{name:spec}` with named fields only, never code.

Python's str.format would let a rule file reach attributes (`{x.__class__}`); this does not.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any, Mapping

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema

# Every field a template may name, with what it holds. Documented in rules/README.md.
FIELDS: dict[str, str] = {
    "rule": "the rule id",
    "severity": "the alert's severity",
    "status": "firing or resolved",
    "group": "the group key, e.g. thread=at://... (or 'all' without group_by)",
    "watch": "the watch of the group (or of the first sample)",
    "thread": "the thread of the group (or of the first sample)",
    "author": "the author of the group (or of the first sample)",
    "platform": "the platform of the group (or of the first sample)",
    "hashtag": "the hashtag of the group",
    "window": "the window length, e.g. 30m",
    "count": "mentions in the window (or in the episode, for match rules)",
    "share_negative": "share of negative mentions, 0..1 (use {share_negative:.0%})",
    "share_positive": "share of positive mentions, 0..1",
    "share_neutral": "share of neutral mentions, 0..1",
    "mean_compound": "mean VADER compound score, -1..1",
    "unique_authors": "distinct authors in the window",
    "top_terms": "the most frequent terms, comma-separated",
    "sample_text": "the text of the first (most negative) sample",
    "sample_url": "the link to the first sample",
    "sample_author": "the author of the first sample",
    "flagged": "mentions in the window that pass the rule's `flag` filter",
    "share_flagged": "share of the window's mentions that are flagged, 0..1",
    "baseline": "spike: the usual count for a window this long; sentiment_shift: the usual mean compound",
    "baseline_mad": "seasonal baselines: the median absolute deviation of the weekly values",
    "ratio": "spike: count divided by the baseline (empty when the baseline is 0)",
    "drop": "sentiment_shift: how far the mean compound is below the baseline",
    "silent": "flatline: how long since the last matching mention, e.g. 6h",
    "failing": "flatline: how long every poll has failed, e.g. 45m (0s when polls succeed)",
    "failed_polls": "flatline: failed polls in a row",
    "last_error": "flatline: the last poll error reported",
    "explanation": "why the alert fired, in plain words: each bound and the value it saw",
    "description": "the rule's description",
}

_FIELD = re.compile(r"\{([^{}]*)\}")
_NAME = re.compile(r"^([a-z_]+)(?::([<>^=+\- #0-9,._%a-zA-Z]*))?$")


@dataclass(frozen=True, slots=True)
class Template:
    source: str
    parts: tuple[tuple[str, str | None, str | None], ...]  # (literal, field, spec)

    @classmethod
    def parse(cls, source: str) -> Template:
        parts: list[tuple[str, str | None, str | None]] = []
        pos = 0
        text = source.replace("{{", "\0").replace("}}", "\1")
        for m in _FIELD.finditer(text):
            literal = text[pos : m.start()]
            inner = m.group(1).strip()
            nm = _NAME.match(inner)
            if nm is None:
                raise ValueError(f"template field {{{inner}}} is not a field name (write e.g. {{count}})")
            name, spec = nm.group(1), nm.group(2)
            if name not in FIELDS:
                import difflib

                guess = difflib.get_close_matches(name, FIELDS, n=1)
                hint = f", did you mean {{{guess[0]}}}?" if guess else ""
                raise ValueError(f"unknown template field {{{name}}}{hint}")
            parts.append((_unescape(literal), name, spec))
            pos = m.end()
        rest = text[pos:]
        if "{" in rest or "}" in rest:
            raise ValueError("unbalanced braces in template (write {{ or }} for a literal brace)")
        parts.append((_unescape(rest), None, None))
        return cls(source, tuple(parts))

    @property
    def fields(self) -> set[str]:
        return {name for _, name, _ in self.parts if name}

    def render(self, values: Mapping[str, Any]) -> str:
        out: list[str] = []
        for literal, name, spec in self.parts:
            out.append(literal)
            if name is None:
                continue
            value = values.get(name)
            if value is None:
                out.append("-")
                continue
            try:
                out.append(format(value, spec or ""))
            except (ValueError, TypeError):
                out.append(str(value))
        return "".join(out)

    def __str__(self) -> str:
        return self.source


def _unescape(text: str) -> str:
    return text.replace("\0", "{").replace("\1", "}")


def _to_template(value: Any) -> Template:
    if isinstance(value, Template):
        return value
    if not isinstance(value, str):
        raise ValueError("a template is a string")
    return Template.parse(value)


TemplateText = Annotated[
    Template,
    BeforeValidator(_to_template),
    PlainSerializer(lambda t: t.source, return_type=str),
    WithJsonSchema({"type": "string", "description": "Text with {field} placeholders; see rules/README.md."}),
]
