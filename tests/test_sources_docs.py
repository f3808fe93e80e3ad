"""The README documents every `sources:` and `watches:` key, and its examples are valid config."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Iterator

import pytest
from pydantic import BaseModel

from listener.config import Config
from listener.sources.base import Watch
from listener.sources.settings import SourcesConfig
from listener.yamlfile import load_yaml, validate

README = Path(__file__).resolve().parent.parent / "README.md"


def keys(model: type[BaseModel], prefix: str = "") -> Iterator[tuple[str, str]]:
    for name, info in model.model_fields.items():
        yield f"{prefix}{name}", name
        for arg in (info.annotation, *getattr(info.annotation, "__args__", ())):
            if isinstance(arg, type) and issubclass(arg, BaseModel) and arg.__module__.startswith("listener.sources"):
                yield from keys(arg, f"{prefix}{name}.")


@pytest.mark.parametrize("path,name", sorted(set(keys(SourcesConfig, "sources.")) | set(keys(Watch, "watches."))))
def test_every_sources_and_watches_key_is_documented(path: str, name: str):
    text = README.read_text(encoding="utf-8")
    assert re.search(rf"`(?:[\w.]+\.)?{re.escape(name)}:?`|^\s*{re.escape(name)}:", text, re.M), (
        f"{path} is not in README.md"
    )


def yaml_examples() -> list[Any]:
    text = README.read_text(encoding="utf-8")
    blocks = re.findall(r"```yaml\n(.*?)```", text, re.S)
    return [load_yaml(b, "README.md") for b in blocks if b.startswith(("watches:", "sources:"))]


def test_the_readme_examples_are_valid_config(tmp_path):
    examples = yaml_examples()
    assert len(examples) >= 2
    for tree in examples:
        validate(Config, tree, "README.md")
