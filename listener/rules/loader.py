"""Loading rule files from paths: every problem in every file, located, before anything runs."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from listener.errors import ConfigError, Problem
from listener.rules.model import RuleBase, RuleFile
from listener.yamlfile import load_file, position

RULE_SUFFIXES = (".yaml", ".yml")


@dataclass
class RuleSet:
    rules: list[RuleBase] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    # rule id -> (file, line) where it is defined
    origins: dict[str, tuple[str, int | None]] = field(default_factory=dict)


def rule_files(paths: Iterable[str | Path]) -> list[Path]:
    """The rule files named, or found (non-recursively, sorted) in the directories named.

    Files ending in `.test.yaml` are rule unit tests, not rules, and are left out.
    """
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found.extend(
                sorted(p for p in path.iterdir()
                       if p.suffix in RULE_SUFFIXES and not p.name.endswith((".test.yaml", ".test.yml")))
            )
        else:
            found.append(path)
    return found


def load_rules(paths: Iterable[str | Path]) -> RuleSet:
    """Validate every rule file; raise one ConfigError listing every problem found."""
    problems: list[Problem] = []
    result = RuleSet()
    files = rule_files(paths)
    if not files:
        raise ConfigError([Problem(", ".join(str(p) for p in paths) or ".", None, None, "no rule files found")])
    for path in files:
        try:
            parsed, tree = load_file(RuleFile, path)
        except ConfigError as exc:
            problems.extend(exc.problems)
            continue
        result.files.append(path)
        for index, rule in enumerate(parsed.rules):
            line, col = position(tree, ("rules", index, "id"))
            if rule.id in result.origins:
                other_file, other_line = result.origins[rule.id]
                problems.append(Problem(str(path), line, col,
                                        f"duplicate rule id {rule.id!r} (first defined at {other_file}:{other_line})"))
                continue
            result.origins[rule.id] = (str(path), line)
            result.rules.append(rule)
    if problems:
        raise ConfigError(problems)
    return result
