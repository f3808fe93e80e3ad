"""Helpers the source tests share: a condition waiter."""

from __future__ import annotations

import asyncio
from typing import Callable


async def wait_for(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    """Poll a condition instead of sleeping a fixed time: fast when things are fast, patient when not."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {timeout_s}s")
        await asyncio.sleep(0.02)
