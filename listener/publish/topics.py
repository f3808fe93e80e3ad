"""The topic layout of the alert contract (see alerts/README.md)."""

from __future__ import annotations

import hashlib
from typing import Any, Mapping

DEFAULT_PREFIX = "social-listener"


def alert_topic(prefix: str, payload: Mapping[str, Any]) -> str:
    """`<prefix>/alerts/<severity>/<rule_id>`; a routed rule goes under `<prefix>/routes/<route>/...`."""
    route = payload.get("route")
    base = f"{prefix}/routes/{route}" if route else f"{prefix}/alerts"
    return f"{base}/{payload['severity']}/{payload['rule']}"


def group_slug(group_key: str) -> str:
    """A topic-safe, stable name for a group key: the first 16 hex digits of its SHA-256.

    Group keys hold '/', '+', '#' and long URLs, none of which may sit in one topic level;
    the readable key is in the payload's `group.key`.
    """
    return hashlib.sha256(group_key.encode("utf-8")).hexdigest()[:16]


def active_topic(prefix: str, payload: Mapping[str, Any]) -> str:
    """`<prefix>/active/<rule_id>/<group slug>`: the retained latest message of a firing episode."""
    return f"{prefix}/active/{payload['rule']}/{group_slug(payload['group']['key'])}"


def status_topic(prefix: str) -> str:
    """`<prefix>/status`: retained `online` / `offline` of the daemon."""
    return f"{prefix}/status"


def ack_command_topic(prefix: str) -> str:
    """`<prefix>/commands/ack`: where `listener alerts ack` asks the daemon to acknowledge an episode."""
    return f"{prefix}/commands/ack"


def ack_topic(prefix: str) -> str:
    """`<prefix>/acks`: the daemon's answer to each ack command (what it recorded)."""
    return f"{prefix}/acks"
