"""A stand-in for the daemon in crash tests: a replay file through Pipeline, and AlertRelay, on one store.

    python tests/relay_proc.py STORE REPLAY RULES_DIR BROKER_URL [--batch N] [--pause-s S]

Resumes from whatever the store holds, ingests the file in batches (waking the relay after each),
prints `drained` when the outbox is empty, then runs until SIGTERM (orderly close) or SIGKILL.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from pathlib import Path

from listener.publish import AlertRelay, parse_broker_url
from listener.pipeline import Pipeline
from listener.replay import ReplayReader
from listener.rules import Engine, load_rules
from listener.sentiment import SentimentScorer
from listener.store import Store


async def main() -> None:
    parser = argparse.ArgumentParser()
    for name in ("store", "replay", "rules", "broker"):
        parser.add_argument(name)
    parser.add_argument("--batch", type=int, default=20)
    parser.add_argument("--pause-s", type=float, default=0.02)
    args = parser.parse_args()
    store = Store(args.store)
    pipeline = Pipeline.resume(store, SentimentScorer(), Engine(load_rules([args.rules]).rules))
    relay = AlertRelay(store, parse_broker_url(args.broker, client_id="crash-test-daemon"),
                       backoff_initial_s=0.1, backoff_max_s=0.5, renotify_after_s=0)
    runner = asyncio.create_task(relay.run())
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    for batch in ReplayReader(Path(args.replay)).batches(args.batch):
        pipeline.ingest(batch)
        relay.wake()
        await asyncio.sleep(args.pause_s)
    while relay.pending:
        await asyncio.sleep(0.05)
    print("drained", flush=True)
    await stop.wait()
    await relay.close(drain_timeout_s=5)
    await runner
    store.close()


if __name__ == "__main__":
    asyncio.run(main())
    sys.exit(0)
