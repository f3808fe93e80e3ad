"""Shared HTTP politeness: rate-limit pacing, 429 and Retry-After, retries with jittered backoff.

Every platform talks through one `HttpClient`. It is where aiohttp's exceptions become
`listener.errors` types, where a platform's rate-limit headers slow us down before the
limit, and where a 429 blocks the whole platform until its reset. Clock and sleep are
parameters so tests can wait out a 30 s reset without waiting 30 s.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import random
import time
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any, Awaitable, Callable, Mapping

import aiohttp
from multidict import CIMultiDictProxy

from listener.errors import RateLimitedError, SourceError, SourceUnavailableError
from listener.sources.settings import PlatformSettings

log = logging.getLogger(__name__)

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True)
class Quota:
    """What a response said about the rate-limit window: requests left and when it resets."""

    remaining: float
    limit: float | None
    reset_ts: float


# A platform's reading of its own rate-limit headers (and of a 429's wait).
QuotaReader = Callable[[Mapping[str, str], float], Quota | None]


@dataclass(frozen=True)
class Response:
    status: int
    headers: Mapping[str, str]
    body: bytes
    url: str
    platform: str
    redirected_permanently: bool = False

    def json(self) -> Any:
        """The body as JSON; garbage is this source's outage, never a crash."""
        try:
            return json.loads(self.body)
        except (ValueError, UnicodeDecodeError):
            snippet = self.body[:80].decode("utf-8", "replace")
            raise SourceUnavailableError(self.platform, f"malformed JSON from {self.url}: {snippet!r}") from None


def retry_after_s(headers: Mapping[str, str], now: float) -> float | None:
    """Retry-After as seconds (it may be a number or an HTTP date)."""
    value = headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - now)
    except (TypeError, ValueError):
        return None


def to_float(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def epoch_quota(prefix: str) -> QuotaReader:
    """`<prefix>-Limit/-Remaining/-Reset` with the reset in epoch seconds (Bluesky, X)."""

    def read(headers: Mapping[str, str], now: float) -> Quota | None:
        remaining = to_float(headers.get(f"{prefix}-Remaining"))
        reset = to_float(headers.get(f"{prefix}-Reset"))
        if remaining is None or reset is None:
            return None
        return Quota(remaining, to_float(headers.get(f"{prefix}-Limit")), reset)

    return read


@dataclass
class Politeness:
    """One platform's manners, shared by all its jobs: pace near the limit, stop after a 429."""

    platform: str
    reserve_ratio: float = 0.1
    max_wait_s: float = 60.0
    clock: Clock = time.time
    sleep: Sleep = asyncio.sleep
    blocked_until_ts: float = 0.0
    quota: Quota | None = None
    waited_s: float = field(default=0.0)

    async def before_request(self) -> None:
        """Wait as the platform asked, or raise RateLimitedError when that is longer than max_wait_s."""
        now = self.clock()
        wait = 0.0
        if self.blocked_until_ts > now:
            wait = self.blocked_until_ts - now
        elif self.quota is not None and self.quota.reset_ts > now:
            q = self.quota
            reserve = (q.limit or 0) * self.reserve_ratio
            if q.remaining <= 0:
                wait = q.reset_ts - now
            elif q.remaining <= reserve:
                # Spread what is left over the rest of the window rather than spending it at once.
                wait = (q.reset_ts - now) / (q.remaining + 1)
        if wait <= 0:
            return
        if wait > self.max_wait_s:
            raise RateLimitedError(self.platform, f"rate limited for another {wait:.0f}s", retry_after_s=wait)
        log.info("%s: waiting %.1fs for the rate limit", self.platform, wait)
        self.waited_s += wait
        await self.sleep(wait)

    def observe(self, quota: Quota | None) -> None:
        if quota is not None:
            self.quota = quota

    def block(self, wait_s: float) -> None:
        self.blocked_until_ts = max(self.blocked_until_ts, self.clock() + wait_s)

    def state(self) -> dict[str, str]:
        out: dict[str, str] = {}
        if self.quota is not None:
            out["rate_remaining"] = f"{self.quota.remaining:g}"
        if self.blocked_until_ts > self.clock():
            out["blocked_until_ts"] = f"{self.blocked_until_ts:.0f}"
        return out


class HttpClient:
    """One platform's HTTP: politeness before, error translation and retries after."""

    def __init__(
        self,
        platform: str,
        session: aiohttp.ClientSession,
        settings: PlatformSettings,
        *,
        quota: QuotaReader | None = None,
        clock: Clock = time.time,
        sleep: Sleep = asyncio.sleep,
        default_wait_s: float = 60.0,
        user_agent: str | None = None,
    ) -> None:
        self.platform = platform
        self.session = session
        self.settings = settings
        self.read_quota = quota
        self.clock = clock
        self.sleep = sleep
        self.default_wait_s = default_wait_s
        self.user_agent = user_agent
        self.politeness = Politeness(platform, settings.reserve_ratio, settings.max_wait_s, clock, sleep)

    def url(self, path: str) -> str:
        return path if path.startswith(("http://", "https://")) else f"{self.settings.base_url}{path}"

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Any = None,
        headers: Mapping[str, str] | None = None,
        data: Any = None,
        json_body: Any = None,
        ok: tuple[int, ...] = (200,),
        rate_limit_wait: Callable[[Response], float | None] | None = None,
    ) -> Response:
        """Send one request; retry timeouts and 5xx; return a response whose status is in `ok`.

        4xx other than 429 come back as they are when listed in `ok`, else raise SourceError with
        the platform's own message, so callers can react to an expired token.
        """
        url = self.url(path)
        all_headers = dict(headers or {})
        if self.user_agent:
            all_headers.setdefault("User-Agent", self.user_agent)
        attempt = 0
        while True:
            await self.politeness.before_request()
            try:
                response = await self._send(method, url, params, all_headers, data, json_body)
            except SourceUnavailableError:
                if attempt >= self.settings.retries:
                    raise
                attempt += 1
                await self._backoff(attempt)
                continue
            now = self.clock()
            if self.read_quota is not None:
                self.politeness.observe(self.read_quota(response.headers, now))
            platform_wait = rate_limit_wait(response) if rate_limit_wait else None
            if response.status == 429 or platform_wait is not None:
                wait = platform_wait or retry_after_s(response.headers, now)
                if wait is None and self.politeness.quota is not None:
                    wait = self.politeness.quota.reset_ts - now
                wait = max(1.0, wait if wait is not None else self.default_wait_s)
                self.politeness.block(wait)
                raise RateLimitedError(self.platform, f"HTTP {response.status} from {_path(url)}", retry_after_s=wait)
            if response.status in ok:
                return response
            if response.status >= 500 or response.status == 408:
                wait = retry_after_s(response.headers, now)
                if attempt < self.settings.retries and (wait is None or wait <= self.settings.max_wait_s):
                    attempt += 1
                    await self._backoff(attempt, wait)
                    continue
                raise SourceUnavailableError(self.platform, f"HTTP {response.status} from {_path(url)}")
            raise SourceError(self.platform, f"HTTP {response.status} from {_path(url)}: {_snippet(response.body)}")

    async def get_json(self, path: str, **kwargs: Any) -> Any:
        return (await self.request("GET", path, **kwargs)).json()

    async def _send(
        self, method: str, url: str, params: Any, headers: dict[str, str], data: Any, json_body: Any
    ) -> Response:
        timeout = aiohttp.ClientTimeout(total=self.settings.timeout_s)
        try:
            async with self.session.request(
                method, url, params=params, headers=headers, data=data, json=json_body, timeout=timeout
            ) as resp:
                body = await resp.read()
                permanent = any(h.status in (301, 308) for h in resp.history)
                return Response(resp.status, _headers(resp.headers), body, str(resp.url), self.platform, permanent)
        except asyncio.TimeoutError:
            raise SourceUnavailableError(
                self.platform, f"timeout after {self.settings.timeout_s:g}s: {_path(url)}"
            ) from None
        except aiohttp.ClientError as exc:
            raise SourceUnavailableError(self.platform, f"{type(exc).__name__}: {_path(url)}") from None

    async def _backoff(self, attempt: int, at_least_s: float | None = None) -> None:
        # Full jitter: concurrent jobs that failed together do not retry together.
        delay = random.uniform(0.5, 1.0) * min(30.0, 2.0 ** (attempt - 1))
        await self.sleep(max(delay, at_least_s or 0.0))


def basic_auth(user: str, password: str) -> str:
    """An HTTP Basic Authorization header value."""
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")


def _headers(raw: CIMultiDictProxy[str]) -> Mapping[str, str]:
    # Keep case-insensitive lookups; a platform's headers vary in case (X sends lowercase).
    return raw.copy()


def _path(url: str) -> str:
    """The URL without its query string: queries can hold tokens, and they never go in logs."""
    return url.split("?", 1)[0]


def _snippet(body: bytes) -> str:
    return body[:200].decode("utf-8", "replace").strip()
