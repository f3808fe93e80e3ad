"""Hot reload of rule files: validate, swap into the running engine, or keep the last good rules.

`RuleReloader.reload(now_ts)` re-reads the rule paths. On success the engine's rules are
swapped with `Engine.replace_rules()` (unchanged rules keep their state). On failure every
last good rule keeps running, the problems come back with file:line:column, and an operator
alert from the reserved rule id `listener-rules-invalid` (severity high) names them; it is
resolved by the next reload that succeeds. `RuleWatcher` polls the files' modification
times and reloads when they change; the daemon may also call `reload()` on SIGHUP.
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Awaitable, Callable, Sequence

from listener.alert import Alert, episode_id
from listener.errors import ConfigError, Problem
from listener.rules.engine import Engine, same_definition
from listener.rules.loader import RULE_SUFFIXES, load_rules

log = logging.getLogger(__name__)

INVALID_RULES_ID = "listener-rules-invalid"
MAX_PROBLEMS_IN_ALERT = 10


@dataclass
class ReloadResult:
    ok: bool
    problems: list[Problem] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)  # to queue like any alert
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)


class RuleReloader:
    """Reloads the rules of one engine from `paths`; see the module docstring."""

    def __init__(self, engine: Engine, paths: Sequence[str | Path]) -> None:
        self.engine = engine
        self.paths = [Path(p) for p in paths]
        self._invalid_since: float | None = None  # start of the open 'rules invalid' episode
        self._invalid_seq = 0

    def reload(self, now_ts: float) -> ReloadResult:
        try:
            ruleset = load_rules(self.paths)
        except ConfigError as exc:
            for problem in exc.problems:
                log.error("rule reload failed: %s", problem)
            return ReloadResult(False, list(exc.problems), [self._invalid_alert(exc.problems, now_ts)])
        before = {r.id: r for r in self.engine.rules}
        after = {r.id: r for r in ruleset.rules if r.enabled}
        alerts = self.engine.replace_rules(ruleset.rules)
        result = ReloadResult(
            True, alerts=alerts,
            added=sorted(set(after) - set(before)),
            changed=sorted(i for i in set(after) & set(before) if not same_definition(before[i], after[i])),
            removed=sorted(set(before) - set(after)),
        )
        if self._invalid_since is not None:
            result.alerts.append(self._valid_again_alert(now_ts))
        log.info("rules reloaded: %d rules; added %s, changed %s, removed %s", len(after),
                 result.added or "none", result.changed or "none", result.removed or "none")
        return result

    def _invalid_alert(self, problems: list[Problem], now_ts: float) -> Alert:
        if self._invalid_since is None:
            self._invalid_since = now_ts
        self._invalid_seq += 1
        shown = [str(p) for p in problems[:MAX_PROBLEMS_IN_ALERT]]
        more = len(problems) - len(shown)
        summary = ("The rule files do not validate; the last good rules keep running. "
                   + " | ".join(shown) + (f" | and {more} more" if more > 0 else ""))
        return self._alert("firing", f"Rule reload failed: {len(problems)} problem(s)", summary, now_ts,
                           {"count": len(problems)})

    def _valid_again_alert(self, now_ts: float) -> Alert:
        self._invalid_seq += 1
        alert = self._alert("resolved", "Rule files valid again", "The rule files validate again and are running.",
                            now_ts, {"count": 0})
        self._invalid_since = None
        self._invalid_seq = 0
        return alert

    def _alert(self, status: str, title: str, summary: str, now_ts: float, metrics: dict[str, int]) -> Alert:
        start = self._invalid_since if self._invalid_since is not None else now_ts
        return Alert(
            id=episode_id(INVALID_RULES_ID, "rules", start), seq=self._invalid_seq, rule=INVALID_RULES_ID,
            status=status, severity="high", title=title, summary=summary, group_key="all", group={},
            episode_start_ts=start, fired_at_ts=now_ts, window_start_ts=start, window_end_ts=now_ts,
            metrics=metrics, labels={"team": "operator"}, route="ops",
            description="The rule files failed validation on reload.", explanation=summary,
        )


Fingerprint = tuple[tuple[str, int, int], ...]


def fingerprint(paths: Sequence[Path]) -> Fingerprint:
    """What changes when a rule file is edited, added, removed or renamed: names, sizes, mtimes.
    The classifier models in a rule directory's `models/` count too (a retrained model reloads)."""
    seen: list[tuple[str, int, int]] = []
    for path in paths:
        candidates = sorted(p for p in path.iterdir() if p.suffix in RULE_SUFFIXES) if path.is_dir() else [path]
        if path.is_dir() and (path / "models").is_dir():
            candidates += sorted((path / "models").glob("*.json"))
        for p in candidates:
            try:
                st = os.stat(p)
            except OSError:
                seen.append((str(p), -1, -1))
                continue
            seen.append((str(p), st.st_size, st.st_mtime_ns))
    return tuple(seen)


class RuleWatcher:
    """Polls the rule files every `interval_s` and calls `on_change` once an edit has settled.

    An edit counts once the fingerprint is the same on two polls in a row, so an editor's
    half-written save is not reloaded. No inotify: it works the same on every filesystem.
    """

    def __init__(self, paths: Sequence[str | Path], on_change: Callable[[], Awaitable[None] | None],
                 interval_s: float = 2.0) -> None:
        self.paths = [Path(p) for p in paths]
        self.on_change = on_change
        self.interval_s = interval_s

    async def run(self) -> None:
        """Watch until cancelled."""
        current = fingerprint(self.paths)
        pending: Fingerprint | None = None
        while True:
            await asyncio.sleep(self.interval_s)
            seen = fingerprint(self.paths)
            if seen == current:
                pending = None
                continue
            if seen != pending:
                pending = seen  # changed since the last poll: wait for it to settle
                continue
            current, pending = seen, None
            outcome = self.on_change()
            if outcome is not None:
                await outcome
