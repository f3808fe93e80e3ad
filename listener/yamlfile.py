"""YAML files validated into frozen pydantic models, with errors that name file:line:column.

Shared by rule files and the daemon's config: ruamel.yaml keeps the position of every key
and value, and pydantic's error locations are walked back through that tree.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Iterable, TypeVar

import pydantic
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError

from listener.errors import ConfigError, Problem

M = TypeVar("M", bound=pydantic.BaseModel)


def load_yaml(text: str, filename: str) -> Any:
    """Parse YAML keeping positions; a syntax error becomes a ConfigError with its location."""
    yaml = YAML(typ="rt")
    try:
        return yaml.load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        column = mark.column + 1 if mark is not None else None
        message = " ".join(part for part in (exc.context, exc.problem) if part) or "invalid YAML"
        raise ConfigError([Problem(filename, line, column, f"YAML syntax: {message}")]) from None
    except Exception as exc:  # ruamel raises a few unmarked errors (e.g. duplicate keys)
        raise ConfigError([Problem(filename, None, None, f"YAML: {exc}")]) from None


def plain(node: Any) -> Any:
    """ruamel's commented containers as plain dicts and lists."""
    if isinstance(node, dict):
        return {str(k): plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [plain(v) for v in node]
    return node


def position(tree: Any, loc: Iterable[Any], *, key: bool = False) -> tuple[int | None, int | None]:
    """Line and column (1-based) of the node at a pydantic error location.

    Elements of `loc` that are not in the tree (discriminated-union tags, function-validator
    names) are skipped. With `key`, the position of the last mapping key rather than its value.
    """
    node = tree
    line: int | None = getattr(getattr(tree, "lc", None), "line", None)
    col: int | None = getattr(getattr(tree, "lc", None), "col", None)
    parts = list(loc)
    for index, part in enumerate(parts):
        last = index == len(parts) - 1
        if isinstance(node, CommentedMap) and node.get("kind") == part and (last or parts[index + 1] in node):
            continue  # a discriminated union's tag that is also a key (a rule of kind 'match' has 'match:')
        if isinstance(node, CommentedMap) and part in node:
            kl, kc = node.lc.key(part)
            vl, vc = node.lc.value(part)
            line, col = (kl, kc) if (key and last) else (vl, vc)
            node = node[part]
        elif isinstance(node, CommentedSeq) and isinstance(part, int) and 0 <= part < len(node):
            line, col = node.lc.item(part)
            node = node[part]
        elif isinstance(node, (CommentedMap, CommentedSeq)):
            continue  # a tag or validator name pydantic adds to the location
        else:
            break
    return (line + 1 if line is not None else None, col + 1 if col is not None else None)


def _field_names(model: type[pydantic.BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """The valid keys where an unknown key was found, for a 'did you mean'."""
    names: set[str] = set()

    def collect(annotation: Any, depth: int) -> None:
        if depth > 6:
            return
        if isinstance(annotation, type) and issubclass(annotation, pydantic.BaseModel):
            for name, info in annotation.model_fields.items():
                names.add(info.alias or name)
                collect(info.annotation, depth + 1)
        for arg in getattr(annotation, "__args__", ()) or ():
            collect(arg, depth + 1)

    # Walk down the model along `loc` as far as it goes, then offer the fields found there.
    current: Any = model
    for part in loc[:-1]:
        if isinstance(current, type) and issubclass(current, pydantic.BaseModel):
            fields = current.model_fields
            match = next((f for n, f in fields.items() if (f.alias or n) == part), None)
            if match is None:
                # union tag such as 'threshold': pick the union member of that name
                continue
            current = match.annotation
        else:
            args = [a for a in getattr(current, "__args__", ()) or () if a is not type(None)]
            tagged = [
                a for a in args
                if isinstance(a, type) and issubclass(a, pydantic.BaseModel)
                and getattr(a.model_fields.get("kind"), "default", None) == part
            ]
            if tagged:
                current = tagged[0]
            elif args:
                current = args[0] if len(args) == 1 else args
    if isinstance(current, list):
        for a in current:
            collect(a, 5)
    else:
        collect(current, 5)
    return sorted(names)


def problems_from(exc: pydantic.ValidationError, tree: Any, filename: str,
                  model: type[pydantic.BaseModel]) -> list[Problem]:
    problems: list[Problem] = []
    for err in exc.errors(include_url=False):
        loc = tuple(err["loc"])
        etype = err["type"]
        if etype == "extra_forbidden":
            bad = str(loc[-1])
            line, col = position(tree, loc, key=True)
            guess = difflib.get_close_matches(bad, _field_names(model, loc), n=1, cutoff=0.6)
            message = f"unknown key {bad!r}" + (f", did you mean {guess[0]!r}?" if guess else "")
        else:
            line, col = position(tree, loc)
            path = ".".join(str(p) for p in loc if not _is_tag(p))
            message = err["msg"]
            if message.startswith("Value error, "):
                message = message[len("Value error, "):]
            if etype == "missing":
                line, col = position(tree, loc[:-1])
                message = f"missing required key {loc[-1]!r}"
            elif path:
                message = f"{path}: {message}"
        problems.append(Problem(filename, line, col, message))
    return problems


def _is_tag(part: Any) -> bool:
    return isinstance(part, str) and ("[" in part or part.startswith("function-"))


def validate(model: type[M], tree: Any, filename: str) -> M:
    try:
        return model.model_validate(plain(tree))
    except pydantic.ValidationError as exc:
        raise ConfigError(problems_from(exc, tree, filename, model)) from None


def load_file(model: type[M], path: str | Path) -> tuple[M, Any]:
    """Read, parse and validate one file; returns the model and the positioned YAML tree."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([Problem(str(path), None, None, f"cannot read: {exc.strerror}")]) from None
    tree = load_yaml(text, str(path))
    if tree is None:
        tree = CommentedMap()
    return validate(model, tree, str(path)), tree
