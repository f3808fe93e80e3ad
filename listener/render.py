"""Alerts shown to a person: a few readable lines each, for the console, the demo and `alerts tail`."""

from __future__ import annotations

import textwrap
from typing import Any, Mapping

SEVERITY_MARK = {"critical": "!!!", "high": "!! ", "medium": "!  ", "low": ".  ", "info": "   "}


def _num(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}" if value.is_integer() else f"{value:.2f}"
    return str(value)


def alert_text(p: Mapping[str, Any], *, width: int = 100) -> str:
    """A payload (alert message v1) as a short block of text."""
    status = p["status"].upper()
    when = p["fired_at"].replace("T", " ")
    head = f"{SEVERITY_MARK.get(p['severity'], '   ')} {p['severity'].upper():<8} {status:<8} {p['title']}"
    if p.get("renotify"):
        head += f"  (reminder {p['renotify']}: not acknowledged)"
    lines = [head, f"    {when}  rule {p['rule']}  episode {p['id']} #{p['seq']}"]
    ack = p.get("ack")
    if ack:
        lines.append(f"    acknowledged by {ack['by']} at {ack['at'].replace('T', ' ')}"
                     + (f": {ack['note']}" if ack.get("note") else ""))
    if p.get("summary"):
        lines.extend(textwrap.wrap(p["summary"], width=width, initial_indent="    ", subsequent_indent="    "))
    why = [
        f"{c['metric']} {_num(c['value'])} {c['op']} {_num(c['bound'])}" + ("" if c["met"] else " (not met)")
        for c in p.get("conditions", [])
    ]
    if why:
        lines.append("    why: " + "; ".join(why))
    metrics = p.get("metrics", {})
    if metrics.get("baseline") is not None:
        lines.append(f"    baseline: {_num(metrics['baseline'])}")
    if p.get("top_terms"):
        lines.append("    terms: " + ", ".join(p["top_terms"]))
    for s in p.get("samples", [])[:3]:
        text = " ".join(s["text"].split())
        if len(text) > 90:
            text = text[:89] + "…"
        who = f"@{s['author']}" if s.get("author") else s["platform"]
        matched = "  matched: " + ", ".join(s["matched"]) if s.get("matched") else ""
        lines.append(f"    - \"{text}\" {who} ({s['compound']:+.2f}){matched}")
        if s.get("url"):
            lines.append(f"      {s['url']}")
    return "\n".join(lines)


def ack_text(answer: Mapping[str, Any]) -> str:
    """The daemon's answer to an ack command (on <prefix>/acks) as one line."""
    ack = answer.get("ack") or {}
    note = f": {ack['note']}" if ack.get("note") else ""
    when = str(ack.get("at")).replace("T", " ")
    return f"ACK          {answer['id']} acknowledged by {ack.get('by')} at {when}{note}"
