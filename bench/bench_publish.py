"""Delivery speed: outbox -> AlertRelay -> a private mosquitto at QoS 1 -> a subscriber process.

    python bench/bench_publish.py [--alerts 5000] [--paced 1000] [--rate 200] [--runs 3]

Throughput: a backlog of `--alerts` queued alerts, drained by the relay (each alert is two QoS 1
publishes: the alert topic and its retained active topic); alerts/s counts PUBACKed rows.
Latency: `--paced` alerts queued one at a time at `--rate`/s while the broker is up, each followed
by `relay.wake()`; latency = subscriber receive time - enqueue time (CLOCK_MONOTONIC, which is
system-wide on Linux, so two processes can compare it). Prints a table, writes bench/out/publish.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiomqtt

from listener.publish import AlertRelay, parse_broker_url
from listener.store import Store

HERE = Path(__file__).resolve().parent
EXTRA = os.environ.get("BENCH_BROKER_EXTRA", "").replace("\\n", "\n")
EXAMPLE = HERE.parent / "alerts" / "examples" / "backlash-firing.json"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_broker(directory: Path) -> tuple[subprocess.Popen[bytes], int]:
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    port = free_port()
    conf = directory / "mosquitto.conf"
    conf.write_text(("user root\n" if os.geteuid() == 0 else "") + f"listener {port} 127.0.0.1\n"
                    "allow_anonymous true\nmax_queued_messages 100000\n" + EXTRA)
    proc = subprocess.Popen([binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, port
        except OSError:
            time.sleep(0.05)
    raise SystemExit("mosquitto did not start")


async def subscriber(port: int, expect: int) -> None:
    """Subscriber mode (a separate process): print one JSON list of (id, latency_ms) when done."""
    out: list[tuple[str, float]] = []
    async with aiomqtt.Client("127.0.0.1", port, identifier=f"bench-sub-{os.getpid()}") as client:
        await client.subscribe("bench/alerts/#", qos=1)
        print("ready", flush=True)
        async for m in client.messages:
            now = time.monotonic_ns()
            p = json.loads(m.payload)  # type: ignore[arg-type]
            out.append((p["id"], (now - p["bench_queued_ns"]) / 1e6))
            if len(out) >= expect:
                break
    print(json.dumps(out), flush=True)


def payloads(n: int, run: int) -> list[dict[str, Any]]:
    base = json.loads(EXAMPLE.read_text())
    return [{**base, "id": f"bench-{run}-{i}", "seq": 1} for i in range(n)]


async def one_run(port: int, store_path: Path, *, backlog: int, paced: int, rate: float, run: int) -> dict[str, Any]:
    sub = await asyncio.create_subprocess_exec(sys.executable, __file__, "--subscriber", str(port),
                                               str(backlog + paced), stdout=asyncio.subprocess.PIPE)
    assert sub.stdout is not None
    assert (await sub.stdout.readline()).strip() == b"ready"
    store = Store(store_path)
    relay = AlertRelay(store, parse_broker_url(f"mqtt://127.0.0.1:{port}", prefix="bench",
                                                client_id=f"bench-relay-{run}"), renotify_after_s=0)
    # Throughput: the backlog is queued before the relay starts.
    now_ns = time.monotonic_ns()
    store.enqueue({**p, "bench_queued_ns": now_ns} for p in payloads(backlog, run))
    t0 = time.perf_counter()
    runner = asyncio.create_task(relay.run())
    while relay.pending:
        await asyncio.sleep(0.001)
    drain_s = time.perf_counter() - t0
    # Latency: one alert at a time, paced, broker up.
    interval = 1.0 / rate
    for p in payloads(paced, run + 1000):
        store.enqueue([{**p, "bench_queued_ns": time.monotonic_ns()}])
        relay.wake()
        await asyncio.sleep(interval)
    out, _ = await asyncio.wait_for(sub.communicate(), 120)
    await relay.close(drain_timeout_s=5)
    await runner
    store.close()
    received = json.loads(out.decode().splitlines()[-1])
    paced_ms = sorted(ms for i, ms in received if i.startswith(f"bench-{run + 1000}-"))
    ids = {i for i, _ in received}
    return {
        "backlog": backlog, "drain_s": drain_s, "alerts_per_s": backlog / drain_s,
        "messages_per_s": 2 * backlog / drain_s, "received": len(ids), "expected": backlog + paced,
        "latency_p50_ms": statistics.median(paced_ms),
        "latency_p99_ms": paced_ms[min(len(paced_ms) - 1, int(len(paced_ms) * 0.99))],
        "latency_max_ms": paced_ms[-1],
    }


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-publish-") as tmp:
        broker, port = start_broker(Path(tmp))
        try:
            runs = [await one_run(port, Path(tmp) / f"run{r}.db", backlog=args.alerts, paced=args.paced,
                                  rate=args.rate, run=r) for r in range(args.runs)]
        finally:
            broker.terminate()
            broker.wait()
    median = {k: statistics.median(r[k] for r in runs) for k in runs[0] if isinstance(runs[0][k], (int, float))}
    print(f"delivery: outbox -> AlertRelay -> mosquitto (QoS 1) -> subscriber process; {args.runs} runs, medians")
    print(f"{'measure':<40} {'median':>10}   runs")
    rows = [("backlog drained, alerts/s", "alerts_per_s", "{:,.0f}"),
            ("  QoS 1 publishes/s (alert + active)", "messages_per_s", "{:,.0f}"),
            (f"latency queued->received p50, ms ({args.rate:g}/s)", "latency_p50_ms", "{:.2f}"),
            ("latency p99, ms", "latency_p99_ms", "{:.2f}"),
            ("latency max, ms", "latency_max_ms", "{:.2f}")]
    for label, key, fmt in rows:
        print(f"{label:<40} {fmt.format(median[key]):>10}   " + ", ".join(fmt.format(r[key]) for r in runs))
    lost = [r for r in runs if r["received"] != r["expected"]]
    print("every alert received in every run" if not lost else f"MISSING alerts in {len(lost)} runs")
    out_dir = HERE / "out"
    out_dir.mkdir(exist_ok=True)
    (out_dir / "publish.json").write_text(json.dumps({"runs": runs, "median": median, "args": vars(args)}, indent=2))


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--subscriber":
        asyncio.run(subscriber(int(sys.argv[2]), int(sys.argv[3])))
        sys.exit(0)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=5000, help="backlog size for throughput (default 5000)")
    parser.add_argument("--paced", type=int, default=1000, help="paced alerts for latency (default 1000)")
    parser.add_argument("--rate", type=float, default=200.0, help="paced alerts per second (default 200)")
    parser.add_argument("--runs", type=int, default=3)
    asyncio.run(main(parser.parse_args()))
