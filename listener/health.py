"""The optional HTTP listener: `/healthz` (200 or 503 with reasons) and `/metrics` (Prometheus)."""

from __future__ import annotations

import json
from typing import Any, Callable

from aiohttp import web

from listener.metrics import CONTENT_TYPE, Metrics

HealthReport = Callable[[], tuple[bool, dict[str, Any]]]


class HealthServer:
    """Loopback by default; `listen` is "host:port" (port 0 picks a free one, see `port`)."""

    def __init__(self, listen: str, report: HealthReport, metrics: Metrics) -> None:
        host, _, port = listen.rpartition(":")
        self.host = host.strip("[]") or "127.0.0.1"
        self.port = int(port)
        self._report = report
        self._metrics = metrics
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/metrics", self._metrics_handler)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        if self.port == 0 and site._server is not None:  # report the port the OS chose
            sockets = getattr(site._server, "sockets", None) or []
            if sockets:
                self.port = sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _healthz(self, request: web.Request) -> web.Response:
        ok, details = self._report()
        body = json.dumps({"status": "ok" if ok else "unhealthy", **details}, indent=2, default=str)
        return web.Response(status=200 if ok else 503, text=body, content_type="application/json")

    async def _metrics_handler(self, request: web.Request) -> web.Response:
        return web.Response(body=self._metrics.exposition(), headers={"Content-Type": CONTENT_TYPE})
