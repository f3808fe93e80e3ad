"""The JSON Schema of rule files, generated from the models: `python -m listener.rules.schema`."""

from __future__ import annotations

import json
from typing import Any

from listener.rules.model import RuleFile

SCHEMA_ID = "https://social-listener.example/schemas/rules-v1.json"


def rule_schema() -> dict[str, Any]:
    schema = RuleFile.model_json_schema(by_alias=True)
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID,
            "title": "social-listener rule file (v1)", **schema}


def render() -> str:
    return json.dumps(rule_schema(), indent=2, sort_keys=False) + "\n"


if __name__ == "__main__":
    print(render(), end="")
