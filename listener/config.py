"""The daemon's config file as frozen, validated models (see systemd/config.example.yaml)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from listener.duration import Duration
from listener.errors import Problem
from listener.paths import SHIPPED_RULES

from listener.publish.broker import BrokerSettings, parse_broker_url
from listener.publish.topics import DEFAULT_PREFIX
from listener.secrets import Secret
from listener.sentiment import VALENCE_MAX, VALENCE_MIN
from listener.sources.base import Watch
from listener.sources.settings import SourcesConfig
from listener.yamlfile import load_file, position



class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BrokerConfig(Strict):
    url: str = Field("mqtt://127.0.0.1:1883", description="mqtt://host:port or mqtts://host:port (TLS).")
    prefix: str = Field(DEFAULT_PREFIX, description="Topic prefix: alerts go to <prefix>/alerts/<severity>/<rule>.")
    client_id: str = Field("social-listener", description="MQTT client id; keep it stable for a persistent session.")
    username: str | None = Field(None, description="MQTT user name.")
    password: Secret | None = Field(None, description="MQTT password, from a file, env variable or credential.")
    ca_file: str | None = Field(None, description="CA certificate file to verify the broker (mqtts).")
    cert_file: str | None = Field(None, description="Client certificate file (mqtts, optional).")
    key_file: str | None = Field(None, description="Client key file (mqtts, optional).")

    @field_validator("url")
    @classmethod
    def _url_parses(cls, value: str) -> str:
        try:
            parse_broker_url(value)
        except Exception as exc:
            raise ValueError(str(exc)) from None
        return value

    def settings(self) -> BrokerSettings:
        return parse_broker_url(
            self.url, prefix=self.prefix, client_id=self.client_id,
            **({"username": self.username} if self.username else {}),
            **({"password": self.password.read()} if self.password else {}),
            ca_file=self.ca_file, cert_file=self.cert_file, key_file=self.key_file,
        )


class SentimentConfig(Strict):
    lexicon: dict[str, float] = Field(
        default_factory=dict, description="Word -> valence (-4..4) applied on top of VADER's lexicon."
    )

    @field_validator("lexicon")
    @classmethod
    def _valence_range(cls, value: dict[str, float]) -> dict[str, float]:
        for word, valence in value.items():
            if not VALENCE_MIN <= valence <= VALENCE_MAX:
                raise ValueError(f"valence of {word!r} must be between -4 and 4, got {valence}")
        return value


class StoreConfig(Strict):
    path: str | None = Field(
        None, description="The SQLite file (default: $STATE_DIRECTORY/listener.db under systemd, else ./listener.db)."
    )
    retention_days: float = Field(30, gt=0, description="Mentions older than this many days are pruned.")
    alert_retention_days: float = Field(
        365, gt=0, description="Delivered alert messages older than this many days are pruned."
    )
    prune_interval: Duration = Field(3600.0, description="How often pruning runs, e.g. 1h.")


class RulesConfig(Strict):
    paths: list[str] | None = Field(
        None,
        description="Rule files or directories (default: rules/ beside the config file, else the shipped library).",
    )
    reload_check_interval: Duration = Field(
        5.0, description="How often rule files are checked for changes (0 turns the check off; SIGHUP still reloads)."
    )


Severity = Literal["info", "low", "medium", "high", "critical"]


class AlertsConfig(Strict):
    renotify_after: Duration = Field(
        900.0, description="Re-publish an unacknowledged alert of these severities after this long (0 turns it off)."
    )
    renotify_severities: list[Severity] = Field(
        default_factory=lambda: list[Severity](("critical", "high")),
        description="Which severities are re-published until acknowledged.",
    )


class HealthConfig(Strict):
    listen: str | None = Field(
        "127.0.0.1:9810", description="host:port of the /healthz and /metrics endpoint; null turns it off."
    )
    failing_polls: int = Field(
        3, ge=1, description="A source that failed this many polls in a row makes /healthz answer 503."
    )

    @field_validator("listen")
    @classmethod
    def _host_port(cls, value: str | None) -> str | None:
        if value:
            host, sep, port = value.rpartition(":")
            if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
                raise ValueError(f"listen must be host:port, got {value!r}")
        return value or None


class LogConfig(Strict):
    format: Literal["auto", "json", "console"] = Field(
        "auto", description="json (one object per line, for journald), console, or auto (console on a terminal)."
    )
    level: Literal["debug", "info", "warning", "error"] = Field("info", description="Least severe level logged.")


class DaemonConfig(Strict):
    tick_interval: Duration = Field(
        5.0, description="How often the rule engine's clock follows the wall clock (windows empty, episodes resolve)."
    )
    shutdown_timeout: Duration = Field(
        10.0, description="On SIGTERM, how long to wait for polls in hand and the outbox to drain."
    )
    poll_backoff: Duration = Field(
        30.0, description="After a failed poll, wait this long before the next (doubling per failure, up to 30m)."
    )
    polls_per_platform: int = Field(4, ge=1, description="At most this many polls of one platform at once.")


class Config(Strict):
    store: StoreConfig = Field(default_factory=StoreConfig, description="The SQLite store and retention.")
    broker: BrokerConfig = Field(default_factory=BrokerConfig, description="The MQTT broker alerts go to.")
    alerts: AlertsConfig = Field(default_factory=AlertsConfig, description="Alert re-notification.")
    rules: RulesConfig = Field(default_factory=RulesConfig, description="Where the rules are.")
    sentiment: SentimentConfig = Field(default_factory=SentimentConfig, description="VADER lexicon overrides.")
    sources: SourcesConfig = Field(default_factory=SourcesConfig, description="Per-platform settings and credentials.")
    watches: list[Watch] = Field(default_factory=list, description="What to listen for, on which platforms.")
    health: HealthConfig = Field(default_factory=HealthConfig, description="The /healthz and /metrics endpoint.")
    log: LogConfig = Field(default_factory=LogConfig, description="Logging.")
    daemon: DaemonConfig = Field(default_factory=DaemonConfig, description="Clock ticks and shutdown.")

    @field_validator("watches")
    @classmethod
    def _unique_watch_ids(cls, value: list[Watch]) -> list[Watch]:
        seen: set[str] = set()
        for watch in value:
            if watch.id in seen:
                raise ValueError(f"watch id {watch.id!r} is used twice")
            seen.add(watch.id)
        return value


@dataclass(frozen=True)
class LoadedConfig:
    """A validated config with what is needed to resolve it: its path and its positioned YAML tree."""

    config: Config
    path: Path
    tree: Any

    @property
    def directory(self) -> Path:
        return self.path.parent

    def resolve(self, value: str) -> str:
        """Paths in a config file are relative to the file's folder."""
        p = Path(value).expanduser()
        return str(p if p.is_absolute() else (self.directory / p))

    def store_path(self) -> str:
        if self.config.store.path:
            return self.resolve(self.config.store.path)
        state = os.environ.get("STATE_DIRECTORY")
        if state:
            return str(Path(state.split(":")[0]) / "listener.db")
        return str(Path.cwd() / "listener.db")

    def rule_paths(self) -> list[str]:
        if self.config.rules.paths:
            return [self.resolve(p) for p in self.config.rules.paths]
        beside = self.directory / "rules"
        return [str(beside)] if beside.is_dir() else [str(SHIPPED_RULES)]

    def secret_problems(self) -> list[Problem]:
        """Secrets named but not readable here (missing file, unset variable), with their position."""
        problems: list[Problem] = []
        for loc, secret in _secrets_in(self.config):
            try:
                value = secret.read()
            except OSError as exc:
                line, col = position(self.tree, loc)
                problems.append(Problem(str(self.path), line, col, f"{'.'.join(map(str, loc))}: cannot read "
                                        f"secret file {secret.file}: {exc.strerror}"))
                continue
            if value is None:
                line, col = position(self.tree, loc)
                what = (f"environment variable {secret.env} is not set" if secret.env
                        else f"credential {secret.credential} not found in $CREDENTIALS_DIRECTORY")
                problems.append(Problem(str(self.path), line, col, f"{'.'.join(map(str, loc))}: {what}"))
        return problems


def _secrets_in(model: BaseModel, loc: tuple[Any, ...] = ()) -> list[tuple[tuple[Any, ...], Secret]]:
    found: list[tuple[tuple[Any, ...], Secret]] = []
    for name in type(model).model_fields:
        value = getattr(model, name)
        if isinstance(value, Secret):
            found.append((loc + (name,), value))
        elif isinstance(value, BaseModel):
            found.extend(_secrets_in(value, loc + (name,)))
        elif isinstance(value, (list, tuple)):
            for i, item in enumerate(value):
                if isinstance(item, BaseModel):
                    found.extend(_secrets_in(item, loc + (name, i)))
        elif isinstance(value, dict):
            for k, item in value.items():
                if isinstance(item, BaseModel):
                    found.extend(_secrets_in(item, loc + (name, k)))
    return found


def load_config(path: str | Path) -> LoadedConfig:
    """Read and validate a config file; raises ConfigError naming file:line:column."""
    config, tree = load_file(Config, path)
    return LoadedConfig(config, Path(path).resolve(), tree)
