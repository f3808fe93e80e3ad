"""`listener rules examples`: posts the daemon has seen, as training examples for a team to label.

A classifier knows what it was shown (`listener rules train`). What a service should show it is
its own stream: the posts its rules alerted on, which the team knows to be right or a false
alarm, and a sample of its ordinary mentions. This writes both as JSON Lines in the training
format, each with a label to check: an alert's examples carry the label the rule stands for (set
it to `none` where the alert was a false alarm), ordinary mentions carry `none` (set the right
label where one is a crisis, threat or tip the rules missed). Reviewed, the file is one more
input of `listener rules train`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Iterator

from listener.mention import Mention, parse_time
from listener.store import Store


@dataclass(frozen=True)
class Example:
    text: str
    label: str
    why: str

    def to_json(self) -> dict[str, Any]:
        return {"text": self.text, "label": self.label, "why": self.why}


def alert_examples(store: Store, labels: dict[str, str], since: datetime | None = None) -> Iterator[Example]:
    """The example posts of the firing messages of the rules in `labels` (rule id -> label), each post
    once, with the whole text where the store still holds the mention."""
    seen: set[tuple[str, str]] = set()
    for payload in store.alert_messages("firing"):
        label = labels.get(payload.get("rule", ""))
        if label is None or (since is not None and parse_time(payload["fired_at"], "fired_at") < since):
            continue
        for sample in payload.get("samples") or ():
            key = (sample.get("platform", ""), sample.get("id", ""))
            if key in seen:
                continue
            seen.add(key)
            text = store.mention_text(*key) or sample.get("text", "")
            if text.strip():
                yield Example(text, label, f"alert {payload['id']} #{payload['seq']} ({payload['rule']}, "
                                           f"{payload['fired_at']}): {label} unless it was a false alarm (then none)")


def ordinary_examples(store: Store, count: int, since: datetime | None = None, seed: int = 1,
                      leave_out: set[str] | None = None) -> list[Example]:
    """`count` mentions drawn at random (the same ones for the same seed), oldest first, labelled none."""
    rng = random.Random(seed)
    chosen: list[tuple[int, Mention]] = []
    seen = 0
    skip = leave_out or set()
    for m in store.mentions_since(since.timestamp() if since is not None else float("-inf")):
        if m.text in skip or not m.text.strip():
            continue
        # reservoir sampling: every mention equally likely, whatever the store holds
        if len(chosen) < count:
            chosen.append((seen, m))
        else:
            j = rng.randrange(seen + 1)
            if j < count:
                chosen[j] = (seen, m)
        seen += 1
    chosen.sort(key=lambda pair: pair[0])
    return [Example(m.text, "none", f"ordinary mention found by {m.watch or m.platform} "
                                    f"({m.created_at.date().isoformat()}): none unless the rules missed something")
            for _, m in chosen]
