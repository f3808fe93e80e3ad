"""The daemon's config file as frozen, validated models (see config.example.yaml)."""

from __future__ import annotations

from pathlib import Path
from pydantic import BaseModel, ConfigDict, Field, field_validator

from listener.publish.broker import BrokerSettings, parse_broker_url
from listener.publish.topics import DEFAULT_PREFIX
from listener.secrets import Secret
from listener.sentiment import VALENCE_MAX, VALENCE_MIN
from listener.sources.base import Watch
from listener.sources.settings import SourcesConfig
from listener.yamlfile import load_file

DEFAULT_PATH = Path("/etc/social-listener/config.yaml")


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
    path: str = Field("/var/lib/social-listener/listener.db", description="The SQLite file.")
    retention_days: float = Field(30, gt=0, description="Mentions older than this are pruned.")


class RulesConfig(Strict):
    paths: list[str] = Field(default_factory=lambda: ["/etc/social-listener/rules"],
                             description="Rule files or directories of rule files.")


class Config(Strict):
    store: StoreConfig = Field(default_factory=StoreConfig)
    broker: BrokerConfig = Field(default_factory=BrokerConfig)
    rules: RulesConfig = Field(default_factory=RulesConfig)
    sentiment: SentimentConfig = Field(default_factory=SentimentConfig)
    sources: SourcesConfig = Field(default_factory=SourcesConfig, description="Per-platform settings and credentials.")
    watches: list[Watch] = Field(default_factory=list, description="What to listen for, on which platforms.")


def load_config(path: str | Path) -> Config:
    config, _ = load_file(Config, path)
    return config


def resolve_relative(config_path: Path, value: str) -> str:
    """Paths in a config file are relative to the file's folder."""
    p = Path(value)
    return str(p if p.is_absolute() else (config_path.parent / p))

