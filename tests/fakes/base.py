"""What every fake platform shares: an in-process aiohttp server, a request log, faults and a quota.

A fake keeps its posts in memory, answers on the real API's paths with the real shapes, and
can be told to fail the next requests the way platforms fail: 429 with the platform's own
reset headers, 5xx, a hang past the client's timeout, or a body that is not what it claims.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Self

from aiohttp import web

from listener.sources.base import Watch


class FakeClock:
    """A clock tests move by hand; its sleep returns at once and moves the clock."""

    def __init__(self, start: float | None = None) -> None:
        self.now = start if start is not None else time.time()
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes = b""
    at: float = field(default_factory=time.monotonic)  # when it arrived, for latency measurements


@dataclass
class Quota:
    limit: int
    remaining: int
    window_s: float
    reset_ts: float = 0.0


@dataclass
class Fault:
    kind: str  # "429", "500", "503", "timeout", "garbage"
    wait_s: float = 30.0


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class FakePlatform:
    """Base of the fake servers. Subclasses add routes and say how their platform words things."""

    platform = "fake"
    catchup: int | None = None  # posts that take several pages to read back (None: no paging)
    listing_path = ""  # the path whose pages the catch-up tests count
    reports_quota = True
    has_auth = True

    def __init__(self, clock: FakeClock | None = None) -> None:
        self.clock = clock or FakeClock()
        self.requests: list[Seen] = []
        self.faults: deque[Fault] = deque()
        self.quota: Quota | None = None
        self.hang_s = 5.0
        self.base_url = ""
        self._seq = 0
        self.app = web.Application(middlewares=[self._middleware])
        self._runner: web.AppRunner | None = None

    # -- lifecycle -----------------------------------------------------------------

    async def start(self) -> str:
        self._runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.base_url = f"http://127.0.0.1:{port}"
        return self.base_url

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- what tests call -----------------------------------------------------------

    def fail(self, kind: str, times: int = 1, wait_s: float = 30.0) -> None:
        self.faults.extend(Fault(kind, wait_s) for _ in range(times))

    def limit(self, limit: int, remaining: int, window_s: float = 300.0) -> None:
        self.quota = Quota(limit, remaining, window_s, self.clock() + window_s)

    def api_requests(self, prefix: str = "") -> list[Seen]:
        return [r for r in self.requests if r.path.startswith(prefix)]

    def next_seq(self) -> int:
        self._seq += 1
        return self._seq

    # -- what subclasses define ----------------------------------------------------

    def watch(self) -> Watch:
        raise NotImplementedError

    def publish(self, n: int = 1) -> list[str]:
        """Add n new posts the watch finds; return the mention ids the source should produce."""
        raise NotImplementedError

    def source(self, session: Any, **settings: Any) -> Any:
        raise NotImplementedError

    def source_with_wrong_credentials(self, session: Any) -> Any:
        raise NotImplementedError

    def secrets(self) -> list[str]:
        """Credential values that must never appear in errors or logs."""
        return []

    def rate_headers(self, quota: Quota) -> dict[str, str]:
        return {}

    def too_many(self, wait_s: float) -> web.Response:
        return web.json_response({"error": "Too many requests"}, status=429, headers={"Retry-After": f"{wait_s:.0f}"})

    def server_error(self, status: int) -> web.Response:
        return web.json_response({"error": "Internal Server Error"}, status=status)

    def garbage(self) -> web.Response:
        return web.Response(text="<html><body>502 Bad Gateway</body></html>", content_type="application/json")

    def counts_toward_quota(self, request: web.Request) -> bool:
        return True

    # -- plumbing ------------------------------------------------------------------

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        body = await request.read()
        query: dict[str, list[str]] = {}
        for k, v in request.query.items():
            query.setdefault(k, []).append(v)
        self.requests.append(Seen(request.method, request.path, query, dict(request.headers), body))
        if self.faults:
            fault = self.faults.popleft()
            if fault.kind == "429":
                return self._with_quota(self.too_many(fault.wait_s), exhausted_for=fault.wait_s)
            if fault.kind in ("500", "502", "503"):
                return self.server_error(int(fault.kind))
            if fault.kind == "timeout":
                await asyncio.sleep(self.hang_s)
            if fault.kind == "garbage":
                return self.garbage()
        if self.quota is not None and self.counts_toward_quota(request):
            q = self.quota
            if self.clock() >= q.reset_ts:
                q.remaining, q.reset_ts = q.limit, self.clock() + q.window_s
            if q.remaining <= 0:
                return self._with_quota(self.too_many(q.reset_ts - self.clock()))
            q.remaining -= 1
        response = await handler(request)
        return self._with_quota(response)

    def _with_quota(self, response: web.StreamResponse, exhausted_for: float | None = None) -> web.StreamResponse:
        if exhausted_for is not None:
            q = Quota(self.quota.limit if self.quota else 300, 0, exhausted_for, self.clock() + exhausted_for)
        else:
            q = self.quota
        if q is not None:
            response.headers.update(self.rate_headers(q))
        return response


def bearer(request: web.Request) -> str | None:
    value = request.headers.get("Authorization", "")
    scheme, _, token = value.partition(" ")
    return token if scheme.lower() == "bearer" and token else None
