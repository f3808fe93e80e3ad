"""Loading rule files from paths: every problem in every file, located, before anything runs."""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

from listener.errors import ConfigError, Problem
from listener.rules.classifier import ModelError, load_model
from listener.rules.model import Classifier, Match, RuleBase, RuleFile
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
            for classifier, loc in _classifiers(rule, ("rules", index)):
                problem = _locate_model(classifier, path)
                if problem is not None:
                    key, message = problem
                    line, col = position(tree, loc + ("classifier", key))
                    problems.append(Problem(str(path), line, col, f"rule {rule.id!r}: {message}"))
    if problems:
        raise ConfigError(problems)
    return result


def _classifiers(rule: RuleBase, loc: tuple[Any, ...]) -> Iterator[tuple[Classifier, tuple[Any, ...]]]:
    """Every classifier filter of a rule, with where it is in the rule file."""
    def walk(block: Match, at: tuple[Any, ...]) -> Iterator[tuple[Classifier, tuple[Any, ...]]]:
        if block.classifier is not None:
            yield block.classifier, at
        for k, branch in enumerate(block.any_of or ()):
            yield from walk(branch, at + ("any_of", k))

    yield from walk(rule.match, loc + ("match",))
    flag = getattr(rule, "flag", None)
    if flag is not None:
        yield from walk(flag, loc + ("flag",))


def _locate_model(classifier: Classifier, rule_file: Path) -> tuple[str, str] | None:
    """Find and read a classifier's model (relative to its rule file); what is wrong, if anything
    (the key at fault and a message)."""
    path = (rule_file.parent / classifier.model).resolve()
    try:
        model = load_model(path)
    except ModelError as exc:
        return "model", f"classifier model: {exc}"
    if classifier.label not in model.labels:
        near = difflib.get_close_matches(classifier.label, model.labels, n=1)
        hint = f", did you mean {near[0]!r}?" if near else f" ({', '.join(model.labels)})"
        return "label", f"classifier label {classifier.label!r} is not one of the model's labels{hint}"
    classifier.located(model)
    return None
