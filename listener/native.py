"""The rule engine's compiled modules: which they are, whether this process runs them compiled, and
the way back to pure Python.

The modules in `MODULES` are ordinary, type-checked Python. Where a C compiler and Python's headers
are at hand, installing the package (`setup.py`) also compiles them with mypyc, the compiler that
makes mypy and black fast: the same source turned into C extensions, each beside its `.py` file,
with one shared library (`listener/_native__mypyc*.so`). Python then imports the extensions. They
behave as the source does (the test suite runs on whichever is in use, and CI runs the engine's
tests both ways); they are about twice as fast (bench/RESULTS.md, Rule engine, Tenth look).

The source stays the truth. This process runs the pure-Python modules instead when

- `LISTENER_PURE_PYTHON=1` is set (to compare, or to rule the compiler out when looking into a bug);
- a module's source changed since it was compiled (an editable checkout, edited: `./dev build`,
  or any `./dev` command, compiles it again);
- nothing was compiled (no C compiler at install time, or `LISTENER_PURE_PYTHON=1` then).

`status()` says which, for `listener --version`, the daemon's first log line and the benchmarks.
This module is imported first by `listener/__init__.py` and is never compiled itself.
"""

from __future__ import annotations

import hashlib
import importlib.abc
import importlib.machinery
import importlib.util
import json
import os
import sys
import warnings
from pathlib import Path
from types import ModuleType
from typing import Any, Sequence

# The engine's hot path: a mention's way through the rules, and what it touches there.
MODULES = (
    "listener.mention",
    "listener.rules.alerting",
    "listener.rules.baseline",
    "listener.rules.classifier",
    "listener.rules.drains",
    "listener.rules.engine",
    "listener.rules.episodes",
    "listener.rules.filters",
    "listener.rules.quiet",
    "listener.rules.runtime",
    "listener.rules.state",
    "listener.rules.text",
)
GROUP = "listener._native"  # the shared library: listener/_native__mypyc.<suffix>
RECORD = "compiled.json"  # written by setup.py beside this file: what was compiled, from which sources
PURE_ENV = "LISTENER_PURE_PYTHON"

PACKAGE_DIR = Path(__file__).resolve().parent
ROOT = PACKAGE_DIR.parent

_status = "pure Python"


def source_path(module: str) -> Path:
    return ROOT.joinpath(*module.split(".")).with_suffix(".py")


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def sources() -> dict[str, str]:
    """Each compiled module's source file, by the sha-256 of its content."""
    return {module: digest(source_path(module)) for module in MODULES}


def record() -> dict[str, Any] | None:
    """What the last build compiled (`setup.py` writes it), or None when nothing was built here."""
    try:
        data = json.loads((PACKAGE_DIR / RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def extensions() -> list[Path]:
    """The compiled modules' extension files present beside their sources."""
    found = []
    for module in MODULES:
        source = source_path(module)
        for suffix in importlib.machinery.EXTENSION_SUFFIXES:
            candidate = source.with_suffix(suffix)
            if candidate.exists():
                found.append(candidate)
                break
    return found


def changed_since_build(built: dict[str, Any] | None) -> list[str]:
    """The compiled modules whose source differs from what was compiled (all of them if unknown)."""
    recorded = built.get("sources", {}) if built else {}
    changed = []
    for module in MODULES:
        source = source_path(module)
        if not source.exists():
            continue  # installed without its sources: nothing to compare, the extension is what there is
        if recorded.get(module) != digest(source):
            changed.append(module)
    return changed


def needs_build() -> bool:
    """Whether `./dev` should build again: nothing recorded, or a compiled module's source changed."""
    built = record()
    if built is None:
        return True
    return bool(built.get("compiled")) and bool(changed_since_build(built))


class _SourceFirst(importlib.abc.MetaPathFinder):
    """Finds the compiled modules' `.py` files, ahead of their extensions."""

    def __init__(self, modules: Sequence[str]) -> None:
        self.modules = frozenset(modules)

    def find_spec(self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
                  ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in self.modules:
            return None
        return importlib.util.spec_from_file_location(fullname, source_path(fullname))


def choose() -> str:
    """Decide, before any compiled module is imported, which this process runs; returns `status()`."""
    global _status
    if not extensions():
        built = record()
        why = built.get("reason") if built is not None and not built.get("compiled") else None
        _status = f"pure Python (not compiled: {why})" if why else "pure Python (not compiled)"
        return _status
    if os.environ.get(PURE_ENV, "").strip().lower() not in ("", "0", "no", "false"):
        _status = f"pure Python ({PURE_ENV} is set)"
    else:
        changed = changed_since_build(record())
        if not changed:
            _status = "compiled (mypyc)"
            return _status
        first = source_path(changed[0]).relative_to(ROOT)
        more = f" and {len(changed) - 1} more" if len(changed) > 1 else ""
        _status = f"pure Python ({first}{more} changed since it was compiled: ./dev build)"
        warnings.warn(f"social-listener: {first}{more} changed since the rule engine was compiled; running the "
                      "pure-Python modules (./dev build compiles them again)", RuntimeWarning, stacklevel=2)
    if not any(isinstance(f, _SourceFirst) for f in sys.meta_path):
        sys.meta_path.insert(0, _SourceFirst(MODULES))
    return _status


def status() -> str:
    """'compiled (mypyc)', or 'pure Python (why)'."""
    return _status


def is_compiled(module: ModuleType) -> bool:
    """Whether `module` was loaded from a compiled extension."""
    return str(getattr(module, "__file__", "")).endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES))
