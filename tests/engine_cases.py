"""Rule shapes and a mention stream that exercise every window metric, direction and kind, for the engine tests."""

from __future__ import annotations

import random
from typing import Any

from pydantic import TypeAdapter

from listener.rules.model import Rule

RULE: TypeAdapter[Any] = TypeAdapter(Rule)
BASE = {"cooldown": "10m", "resolve_after": "5m", "group_by": ["watch"]}

RULES: list[dict[str, Any]] = [
    {"kind": "threshold", "window": "30m", "conditions": ["count >= 12", "share_negative >= 0.5"]},
    {"kind": "threshold", "window": "20m", "conditions": ["mean_compound <= -0.2", "unique_authors > 3"],
     "combine": "any"},
    {"kind": "threshold", "window": "1h", "conditions": ["share_neutral < 0.3", "share_positive != 0.5",
                                                        "count > 5"]},
    {"kind": "threshold", "window": "45m", "flag": {"sentiment": "negative"},
     "conditions": ["flagged >= 6", "share_flagged >= 0.5"]},
    {"kind": "threshold", "window": "15m", "conditions": ["count <= 2"]},
    {"kind": "spike", "window": "30m", "baseline": {"type": "trailing", "period": "6h"}, "factor": 2,
     "min_count": 8},
    {"kind": "spike", "window": "1h", "baseline": {"type": "seasonal", "weeks": 2, "min_weeks": 1},
     "factor": 1.5, "min_count": 5, "min_mads": 1},
    {"kind": "sentiment_shift", "window": "1h", "baseline": {"type": "trailing", "period": "6h"}, "drop": 0.2,
     "min_count": 6, "min_baseline_count": 20},
]


# Rules whose verdict can turn true as mentions leave a window, for every metric and direction.
DRAIN_RULES: list[dict[str, Any]] = RULES + [
    {"kind": "threshold", "window": "30m", "conditions": ["count >= 5", "share_positive >= 0.6"]},
    {"kind": "threshold", "window": "30m", "conditions": ["count > 4", "share_negative <= 0.2"]},
    {"kind": "threshold", "window": "40m", "conditions": ["count >= 4", "mean_compound >= 0.3"]},
    {"kind": "threshold", "window": "40m", "conditions": ["unique_authors <= 2", "count >= 3"]},
    {"kind": "threshold", "window": "1h", "conditions": ["share_neutral >= 0.5", "mean_compound < -0.1"],
     "combine": "any"},
    {"kind": "sentiment_shift", "window": "30m", "baseline": {"type": "trailing", "period": "3h"}, "drop": 0.1,
     "min_count": 4, "min_baseline_count": 10},
]


def moody_stream(make_mention, seed: int) -> list[Any]:
    """Mentions in moods (mostly negative, mostly positive, mixed, neutral) with quiet gaps between,
    5 % of them late: windows fill with one mood and drain into another."""
    rng = random.Random(seed)
    moods = [[-0.8, -0.6, -0.3, 0.4], [0.7, 0.5, 0.9, -0.2], [-0.7, 0.0, 0.6, 0.02], [0.0, 0.01, -0.02, 0.3]]
    out, t = [], 0.0
    for _ in range(60):
        mood = rng.choice(moods)
        for _ in range(rng.randrange(3, 30)):
            t += rng.expovariate(1 / 60)
            late = rng.random() < 0.05
            out.append(make_mention(at_s=t - (rng.random() * 900 if late else 0), watch=rng.choice("ab"),
                                    author=f"u{rng.randrange(6)}", compound=rng.choice(mood)))
        t += rng.expovariate(1 / 1500)  # a quiet gap: the windows drain
    return out


RESTART_RULES = [r for r in DRAIN_RULES if r.get("baseline", {}).get("type") != "seasonal"] + [
    {"kind": "match", "match": {"sentiment": "negative"}, "cooldown": "20m", "resolve_after": "30m"},
    {"kind": "threshold", "window": "30m", "conditions": ["count >= 6"],
     "escalate": [{"severity": "high", "conditions": ["count >= 12"]}], "cooldown": "1h", "resolve_after": "10m"},
]
