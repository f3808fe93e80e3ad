"""The compiled rule engine (listener/native.py): the source stays the truth.

Each case runs Python in a child process on a copy of the package, so that what it imports (the
compiled extensions or their sources) is decided afresh, as for a new daemon.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from listener import native

from conftest import ROOT

PROBE = "import listener, listener.rules.engine as e; print(listener.native.status()); print(e.__file__)"


def copy_package(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "listener", tmp_path / "listener", ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path / "listener"


def probe(where: Path, **env: str) -> tuple[str, str, str]:
    """(status, file the engine was loaded from, stderr) of a fresh interpreter importing from `where`."""
    clean = {k: v for k, v in os.environ.items() if k != native.PURE_ENV}
    done = subprocess.run([sys.executable, "-c", PROBE], cwd=where, env={**clean, "PYTHONPATH": str(where), **env},
                          capture_output=True, text=True, check=True)
    status, file = done.stdout.splitlines()
    assert Path(file).is_relative_to(where), "the probe must import the copy, not the checkout"
    return status, file, done.stderr


compiled_here = pytest.mark.skipif(not native.status().startswith("compiled"),
                                   reason=f"the rule engine is not compiled in this checkout ({native.status()}): "
                                          "./dev build compiles it where a C compiler and Python's headers are")


@compiled_here
def test_the_compiled_engine_runs_while_its_sources_are_those_it_was_compiled_from(tmp_path):
    status, file, err = probe(copy_package(tmp_path).parent)
    assert status == "compiled (mypyc)" and file.endswith(".so") and not err


@compiled_here
def test_an_edited_source_runs_as_the_source_with_a_warning_naming_it(tmp_path):
    package = copy_package(tmp_path)
    with open(package / "rules" / "quiet.py", "a", encoding="utf-8") as f:
        f.write("\n# an edit after the build\n")
    status, file, err = probe(package.parent)
    assert status.startswith("pure Python (listener/rules/quiet.py changed since it was compiled")
    assert file.endswith("engine.py")  # every compiled module from its source, not only the edited one
    assert "listener/rules/quiet.py changed since the rule engine was compiled" in err
    assert json.loads((package / native.RECORD).read_text())["compiled"] is True  # the build is not what changed


def test_the_source_runs_when_asked(tmp_path):
    status, file, err = probe(copy_package(tmp_path).parent, **{native.PURE_ENV: "1"})
    assert status.startswith("pure Python") and file.endswith("engine.py") and not err


def test_a_copy_without_extensions_runs_the_source_and_needs_a_build(tmp_path):
    package = copy_package(tmp_path)
    for path in list(package.rglob("*.so")) + [package / native.RECORD]:
        path.unlink(missing_ok=True)
    status, file, _ = probe(package.parent)
    assert status == "pure Python (not compiled)" and file.endswith("engine.py")
    check = "import sys, listener.native as n; sys.exit(0 if n.needs_build() else 1)"
    assert subprocess.run([sys.executable, "-c", check], cwd=package.parent,
                          env={**os.environ, "PYTHONPATH": str(package.parent)}).returncode == 0


ALERTS = """
import hashlib, json, sys
from dataclasses import replace
sys.path.insert(0, sys.argv[1])
import bench_engine
from pydantic import TypeAdapter
import listener
from listener.mention import Mention
from listener.paths import SHIPPED_RULES
from listener.rules import Engine, load_rules
from listener.rules.model import Rule
from listener.sentiment import SentimentScorer
shipped = load_rules([SHIPPED_RULES]).rules
rules = shipped + [TypeAdapter(Rule).validate_python(s) for s in bench_engine.SYNTHETIC[: 20 - len(shipped)]]
scorer = SentimentScorer()
mentions = [replace(m, sentiment=scorer.score(m.text))
            for m in map(Mention.from_dict, bench_engine.generate(int(sys.argv[2]), 2.0))]
engine = Engine(rules)
digest, count = hashlib.sha256(), 0
for start in range(0, len(mentions), 500):
    for alert in engine.process(mentions[start : start + 500]) + engine.advance(engine.now_ts + 60):
        digest.update(json.dumps(alert.to_payload(), sort_keys=True).encode())
        count += 1
digest.update(json.dumps(engine.snapshot(), sort_keys=True).encode())
print(listener.native.status(), count, digest.hexdigest(), sep="|")
"""


@compiled_here
def test_the_compiled_engine_sends_the_alerts_its_source_sends_byte_for_byte():
    """The shipped library and the benchmark's synthetic rules (20) over the benchmark's stream, compiled
    and from source: the same alert payloads, in the same order, and the same state to carry over a restart.
    (mypyc stores an int given where the source says float as a float: `bound: 15` read `15.0`.)"""
    runs = {}
    for env in ({}, {native.PURE_ENV: "1"}):
        clean = {k: v for k, v in os.environ.items() if k != native.PURE_ENV}
        done = subprocess.run([sys.executable, "-c", ALERTS, str(ROOT / "bench"), "30000"], env={**clean, **env},
                              capture_output=True, text=True, check=True, timeout=300)
        status, count, digest = done.stdout.strip().splitlines()[-1].split("|")
        runs[status.split(" (")[0]] = (int(count), digest)
    assert set(runs) == {"compiled", "pure Python"}
    assert runs["compiled"][0] > 300  # the stream makes alerts of every kind
    assert runs["compiled"] == runs["pure Python"]
