"""Per-platform source settings (config: `sources:`): endpoints, credentials, limits."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from listener.secrets import Secret


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PlatformSettings(_Strict):
    """What every platform section shares: how far to page, how long to wait, how polite to be."""

    base_url: str = Field(description="The API's base URL (the real host by default; tests point it at fakes).")
    timeout_s: float = Field(20.0, gt=0, description="One HTTP request's total timeout.")
    max_pages: int = Field(
        5, ge=1, le=100, description="Catch-up bound: at most this many pages per poll after a downtime."
    )
    retries: int = Field(2, ge=0, le=5, description="Retries of one request on timeouts and 5xx, with backoff.")
    reserve_ratio: float = Field(
        0.1, ge=0, lt=1, description="Slow down once fewer than this share of the rate-limit window is left."
    )
    max_wait_s: float = Field(
        60.0, ge=0, description="Wait out a rate limit inside a poll up to this long; longer ones skip polls."
    )

    @field_validator("base_url")
    @classmethod
    def _no_trailing_slash(cls, value: str) -> str:
        if not value.startswith(("http://", "https://", "ws://", "wss://")):
            raise ValueError(f"base_url must start with http:// or https://, got {value!r}")
        return value.rstrip("/")


class JetstreamSettings(_Strict):
    """Bluesky's Jetstream firehose: real-time posts, filtered here to the watches."""

    enabled: bool = Field(False, description="Listen to Jetstream as well as polling search.")
    url: str = Field("wss://jetstream2.us-east.bsky.network", description="Jetstream host (wss://…).")
    rewind_s: float = Field(5.0, ge=0, description="Resume this far before the saved cursor after a reconnect.")
    flush_s: float = Field(
        0.25, gt=0, description="Hand matching posts to the pipeline at most this often (bounds its latency)."
    )
    max_backoff_s: float = Field(300.0, gt=0, description="Longest wait between reconnect attempts.")


class BlueskySettings(PlatformSettings):
    base_url: str = Field("https://bsky.social", description="The account's PDS (or bsky.social).")
    public_url: str = Field(
        "https://public.api.bsky.app", description="Unauthenticated AppView, for handle resolution."
    )
    identifier: str | None = Field(None, description="Handle or e-mail of the account that searches.")
    app_password: Secret | None = Field(None, description="An app password (Settings → App passwords).")
    overlap_s: float = Field(600.0, ge=0, description="Re-search this far back each poll (search indexing lags).")
    jetstream: JetstreamSettings = Field(default_factory=JetstreamSettings)


class MastodonSettings(PlatformSettings):
    base_url: str = Field("https://mastodon.social", description="The instance, e.g. https://mastodon.social.")
    access_token: Secret | None = Field(
        None, description="User token (read:statuses read:notifications read:accounts); needed for mentions."
    )


class XSettings(PlatformSettings):
    base_url: str = Field("https://api.x.com", description="The X API host.")
    bearer_token: Secret = Field(description="App-only bearer token from the X developer portal.")
    exclude_retweets: bool = Field(True, description="Add -is:retweet to searches.")


class InstagramSettings(PlatformSettings):
    base_url: str = Field("https://graph.facebook.com/v24.0", description="Graph API base, with its version.")
    access_token: Secret = Field(description="Long-lived user token with instagram_basic and comment scopes.")
    user_id: str = Field(description="The organisation's Instagram professional account id (IG user id).")
    recent_media: int = Field(10, ge=1, le=50, description="Account watches read comments on this many newest posts.")
    max_hashtags: int = Field(30, ge=1, le=30, description="Distinct hashtags searched per 7 days (Instagram's cap).")


class RedditSettings(PlatformSettings):
    base_url: str = Field("https://oauth.reddit.com", description="OAuth API host.")
    auth_url: str = Field("https://www.reddit.com", description="Where tokens come from (/api/v1/access_token).")
    client_id: str = Field(description="The app's client id (reddit.com/prefs/apps).")
    client_secret: Secret = Field(description="The app's secret.")
    username: str | None = Field(None, description="Script apps: the account; omit for app-only access.")
    password: Secret | None = Field(None, description="Script apps: the account's password.")
    user_agent: str = Field(
        pattern=r"^\S+:\S+:\S+ \(by /u/\S+\)$",
        description="Reddit requires <platform>:<app id>:<version> (by /u/<name>); generic ones are throttled.",
    )


class RssSettings(PlatformSettings):
    base_url: str = Field("https://localhost", description="Unused: each watch's target is the feed URL.")
    user_agent: str = Field("social-listener (+https://github.com/social-listener)", description="Sent to feeds.")
    max_seen: int = Field(1000, ge=10, description="Entry ids remembered per feed to drop repeats.")


class SourcesConfig(_Strict):
    """One optional section per platform. A platform without one is not polled, except RSS and Mastodon
    (public timelines), which then run with their defaults."""

    bluesky: BlueskySettings | None = None
    mastodon: MastodonSettings | None = None
    x: XSettings | None = None
    instagram: InstagramSettings | None = None
    reddit: RedditSettings | None = None
    rss: RssSettings | None = None
