"""Docs that cannot drift: every command and config key is in the README, every metric too."""

from __future__ import annotations

import argparse
import re

from pydantic import BaseModel

from listener.cli import build_parser
from listener.config import Config
from listener.metrics import Metrics

from conftest import ROOT

README = (ROOT / "README.md").read_text()


def commands(parser: argparse.ArgumentParser, prefix: str = "listener") -> list[str]:
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found.append(f"{prefix} {name}")
                found.extend(commands(sub, f"{prefix} {name}"))
    return found


def test_every_command_is_in_the_readme():
    listed = commands(build_parser())
    assert "listener run" in listed and "listener rules check" in listed
    missing = [c for c in listed if f"`{c}" not in README]
    assert not missing, f"commands not documented in README.md: {missing}"


def keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    out = []
    for name, info in model.model_fields.items():
        path = f"{prefix}{name}"
        annotation = info.annotation
        if path in ("sources", "watches"):  # documented platform by platform (tests/test_sources_docs.py)
            out.append(path)
            continue
        if isinstance(annotation, type) and issubclass(annotation, BaseModel) and path.count(".") == 0:
            out.extend(keys(annotation, f"{path}."))
        else:
            out.append(path)
    return out


def test_every_config_key_is_in_the_readme_and_the_example():
    example = (ROOT / "systemd" / "config.example.yaml").read_text()
    missing_readme = [k for k in keys(Config) if f"`{k}" not in README]
    assert not missing_readme, f"config keys not documented in README.md: {missing_readme}"
    missing_example = [k for k in keys(Config) if not re.search(rf"\b{k.rsplit('.', 1)[-1]}:", example)]
    assert not missing_example, f"config keys missing from systemd/config.example.yaml: {missing_example}"


def test_every_metric_is_in_the_readme():
    metrics = Metrics()
    names = {m.name for m in metrics.registry.collect()}
    missing = [n for n in names if n not in README]
    assert not missing, f"metrics not documented in README.md: {missing}"


def test_rule_examples_in_the_readme_are_valid(tmp_path):
    from listener.rules import load_rules

    blocks = [b for b in re.findall(r"```yaml\n(.*?)```", README, re.S) if re.search(r"(?m)^rules:", b)]
    assert blocks, "the README shows a rule"
    for i, block in enumerate(blocks):
        path = tmp_path / f"example{i}.yaml"
        path.write_text(block)
        assert load_rules([path]).rules
