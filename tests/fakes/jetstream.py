"""A fake Jetstream: `/subscribe` over WebSocket, replaying commit events from a `cursor` in µs, then live."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import WSMsgType, web

from fakes.base import FakePlatform


class FakeJetstream(FakePlatform):
    platform = "jetstream"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.events: list[dict[str, Any]] = []
        self.cursors: list[int | None] = []
        self.sockets: set[web.WebSocketResponse] = set()
        self._new = asyncio.Event()
        self.time_us = 1_787_260_443_000_000
        self.app.router.add_get("/subscribe", self.subscribe)

    def post(self, did: str, text: str, time_us: int | None = None, **record: Any) -> str:
        """A create event for an app.bsky.feed.post; returns its at:// URI.

        Events are one second apart unless `time_us` (the stream's clock) is given.
        """
        n = self.next_seq()
        self.time_us = self.time_us + 1_000_000 if time_us is None else max(time_us, self.time_us + 1)
        rkey = f"3lzx{n:09d}"
        self.events.append(
            {
                "did": did,
                "time_us": self.time_us,
                "kind": "commit",
                "commit": {
                    "rev": f"3lzx7c2kr{n:04d}",
                    "operation": "create",
                    "collection": "app.bsky.feed.post",
                    "rkey": rkey,
                    "cid": "bafyreib2rxk3rh6kzwq4d5p6xqv2w7m3c4",
                    "record": {
                        "$type": "app.bsky.feed.post",
                        "text": text,
                        "createdAt": "2026-08-20T21:14:03.112Z",
                        "langs": ["en"],
                        **record,
                    },
                },
            }
        )
        self._new.set()
        return f"at://{did}/app.bsky.feed.post/{rkey}"

    def noise(self, kind: str = "identity") -> None:
        self.time_us += 1_000_000
        self.events.append(
            {
                "did": "did:plc:someone",
                "time_us": self.time_us,
                "kind": kind,
                kind: {"did": "did:plc:someone", "seq": 1},
            }
        )
        self._new.set()

    async def drop(self) -> None:
        """Close every connection, as a restarting Jetstream instance would."""
        for ws in list(self.sockets):
            await ws.close()

    async def subscribe(self, request: web.Request) -> web.StreamResponse:
        if "app.bsky.feed.post" not in request.query.getall("wantedCollections", []):
            return web.json_response({"error": "wantedCollections required"}, status=400)
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        cursor = int(request.query["cursor"]) if "cursor" in request.query else None
        self.cursors.append(cursor)
        self.sockets.add(ws)
        # No cursor: live only, from now on.
        sent = len(self.events) if cursor is None else 0
        try:
            while not ws.closed:
                # By index: events posted while a send is awaited are sent too, not skipped.
                while sent < len(self.events):
                    event = self.events[sent]
                    sent += 1
                    if cursor is None or event["time_us"] >= cursor:
                        await ws.send_str(json.dumps(event))
                self._new.clear()
                waiter = asyncio.ensure_future(self._new.wait())
                reader = asyncio.ensure_future(ws.receive())
                done, pending = await asyncio.wait({waiter, reader}, return_when=asyncio.FIRST_COMPLETED)
                for task in pending:
                    task.cancel()
                if reader in done and reader.result().type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.ERROR):
                    break
        finally:
            self.sockets.discard(ws)
        return ws
