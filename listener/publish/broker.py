"""Where the broker is and how to log in: parsed from `mqtt://` / `mqtts://` URLs."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from listener.errors import InputError
from listener.publish.topics import DEFAULT_PREFIX


@dataclass(frozen=True)
class BrokerSettings:
    host: str = "127.0.0.1"
    port: int = 1883
    tls: bool = False
    username: str | None = None
    password: str | None = None
    client_id: str = "social-listener"
    prefix: str = DEFAULT_PREFIX
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None

    def __repr__(self) -> str:  # never show the password
        return (f"BrokerSettings(host={self.host!r}, port={self.port}, tls={self.tls}, "
                f"username={self.username!r}, client_id={self.client_id!r}, prefix={self.prefix!r})")

    @property
    def url(self) -> str:
        """The URL without credentials, for logs and messages."""
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"


def parse_broker_url(url: str, **overrides: object) -> BrokerSettings:
    """`mqtt://[user[:password]@]host[:port]` or `mqtts://...` (TLS, default port 8883)."""
    parts = urlsplit(url if "://" in url else f"mqtt://{url}")
    if parts.scheme not in ("mqtt", "mqtts"):
        raise InputError(f"broker URL must start with mqtt:// or mqtts://, got {parts.scheme}://")
    if not parts.hostname:
        raise InputError("broker URL has no host")
    tls = parts.scheme == "mqtts"
    try:
        port = parts.port or (8883 if tls else 1883)
    except ValueError:
        raise InputError("broker URL has an invalid port") from None
    settings = BrokerSettings(
        host=parts.hostname,
        port=port,
        tls=tls,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
    )
    if overrides:
        from dataclasses import replace

        settings = replace(settings, **overrides)  # type: ignore[arg-type]
    return settings
