"""The topic layout of the alert contract (see alerts/README.md)."""

from __future__ import annotations

from typing import Any, Mapping

DEFAULT_PREFIX = "social-listener"


def alert_topic(prefix: str, payload: Mapping[str, Any]) -> str:
    """`<prefix>/alerts/<severity>/<rule_id>`; a routed rule goes under `<prefix>/routes/<route>/...`."""
    route = payload.get("route")
    base = f"{prefix}/routes/{route}" if route else f"{prefix}/alerts"
    return f"{base}/{payload['severity']}/{payload['rule']}"


def status_topic(prefix: str) -> str:
    return f"{prefix}/status"
