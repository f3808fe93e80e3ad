"""The alert: what the rule engine decides and the publisher sends, and its v1 JSON payload.

An episode is one stretch of time during which a rule's condition held for one group. Its
`id` is stable (derived from rule, group key and episode start); each message about it
(first firing, updates, resolution) carries the next `seq`. Consumers thread on `id` and
deduplicate on (`id`, `seq`). The JSON Schema is `alerts/alert.schema.json`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from listener.mention import Mention, format_time, from_ts

SCHEMA_VERSION = 1
# Payload size is bounded (a few KB): consumers such as phones and Node-RED flows need not cope
# with megabytes because a rule template or a post ran long.
MAX_SAMPLES = 5
MAX_SAMPLE_TEXT = 500
MAX_TITLE = 200
MAX_SUMMARY = 1000
MAX_DESCRIPTION = 1000
MAX_TOP_TERMS = 10
MAX_MATCHED = 5  # per sample: what in its text the rule's filters found
MAX_MATCHED_TEXT = 60


def cut(text: str, limit: int) -> str:
    """`text`, or its first `limit - 1` characters and an ellipsis."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def episode_id(rule_id: str, group_key: str, start_ts: float) -> str:
    """Stable across restarts and replays: the same episode always gets the same id."""
    digest = hashlib.sha256(f"{rule_id}\x1f{group_key}\x1f{start_ts:.6f}".encode()).hexdigest()
    return f"{rule_id}-{digest[:16]}"


@dataclass(frozen=True, slots=True)
class Alert:
    id: str
    seq: int
    rule: str
    status: str  # "firing" or "resolved"
    severity: str
    title: str
    summary: str
    group_key: str
    group: Mapping[str, str]
    episode_start_ts: float
    fired_at_ts: float
    window_start_ts: float
    window_end_ts: float
    metrics: Mapping[str, Any]
    conditions: tuple[Mapping[str, Any], ...] = ()
    samples: tuple[Mention, ...] = ()
    sample_matches: tuple[tuple[str, ...], ...] = ()  # parallel to samples: the terms and regex matches found
    top_terms: tuple[str, ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict)
    route: str | None = None
    description: str = ""
    explanation: str = ""  # why it fired or resolved, in plain words

    def to_payload(self) -> dict[str, Any]:
        """The alert message v1, as published on MQTT."""
        return {
            "schema_version": SCHEMA_VERSION,
            "id": self.id,
            "seq": self.seq,
            "rule": self.rule,
            "status": self.status,
            "severity": self.severity,
            "title": cut(self.title, MAX_TITLE),
            "summary": cut(self.summary, MAX_SUMMARY),
            "description": cut(self.description, MAX_DESCRIPTION),
            "group": {"key": self.group_key, "values": dict(self.group)},
            "episode_start": format_time(from_ts(self.episode_start_ts)),
            "fired_at": format_time(from_ts(self.fired_at_ts)),
            "window": {
                "start": format_time(from_ts(self.window_start_ts)),
                "end": format_time(from_ts(self.window_end_ts)),
            },
            "metrics": dict(self.metrics),
            "conditions": [dict(c) for c in self.conditions],
            "top_terms": list(self.top_terms[:MAX_TOP_TERMS]),
            "samples": [sample_payload(m, self.sample_matches[i] if i < len(self.sample_matches) else ())
                        for i, m in enumerate(self.samples[:MAX_SAMPLES])],
            "labels": dict(self.labels),
            "route": self.route,
            "explanation": self.explanation,
        }


def sample_payload(m: Mention, matched: Sequence[str] = ()) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "platform": m.platform,
        "id": m.id,
        "url": m.url,
        "author": m.author,
        "text": cut(m.text, MAX_SAMPLE_TEXT),
        "created_at": format_time(m.created_at),
        "compound": m.compound,
    }
    if matched:
        payload["matched"] = [cut(text, MAX_MATCHED_TEXT) for text in matched[:MAX_MATCHED]]
    return payload
