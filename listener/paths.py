"""Where the project's own files are when running from a checkout."""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHIPPED_RULES = ROOT / "rules"
ALERT_SCHEMA = ROOT / "alerts" / "alert.schema.json"
DEMO_SCENARIO = Path(__file__).resolve().parent / "demo" / "scenario.jsonl"
DEFAULT_CONFIG = Path("/etc/social-listener/config.yaml")
