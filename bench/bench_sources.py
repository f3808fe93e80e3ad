"""Sources and scheduling: many watches polled against the fake platforms; lateness and idle CPU.

    python bench/bench_sources.py [--watches 500] [--interval 15] [--load-s 45] [--idle-s 20]

Starts the fake servers from tests/fakes in this process, schedules `--watches` watches spread
over the six platforms with PollScheduler, and reports how late polls started against their
scheduled time (p50/p99/max) and the CPU used per poll. Then it reschedules every watch to a
long interval and measures the CPU the process burns while idle between polls. Prints a table,
writes bench/out/sources.json and the "Sources and scheduling" section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import platform
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from fakes import FAKES  # noqa: E402
from listener.sources.base import Batch, Watch  # noqa: E402
from listener.sources.scheduler import PollScheduler  # noqa: E402

HEADING = "## Sources and scheduling"


def cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


async def run(args: argparse.Namespace) -> dict[str, Any]:
    fakes = {name: cls() for name, cls in FAKES.items()}
    for fake in fakes.values():
        await fake.start()
        fake.publish(5)
    names = sorted(fakes)
    cursors: dict[str, str] = {}
    polls = {"ok": 0, "failed": 0, "mentions": 0}

    async def on_batch(watch: Watch, key: str, batch: Batch) -> None:
        polls["mentions"] += len(batch.mentions)
        if batch.next_cursor:
            cursors[key] = batch.next_cursor

    def on_poll(key: str, ok: bool, error: str | None) -> None:
        polls["ok" if ok else "failed"] += 1

    def watches(interval: float) -> list[Watch]:
        out = []
        for i in range(args.watches):
            fake = fakes[names[i % len(names)]]
            template = fake.watch()
            out.append(Watch(id=f"w{i:04d}", kind=template.kind, targets=template.targets, interval=interval))
        return out

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=100)) as session:
        sources = {name: fake.source(session) for name, fake in fakes.items()}
        sched = PollScheduler(
            sources, get_cursor=cursors.get, on_batch=on_batch, on_poll=on_poll, startup_spread_s=args.interval
        )
        sched.start(watches(args.interval))
        # Warm-up: the first round spreads its start over one interval.
        await asyncio.sleep(args.interval)
        sched.lateness_s.clear()
        done_before = polls["ok"] + polls["failed"]
        cpu0, wall0 = cpu_s(), time.monotonic()
        await asyncio.sleep(args.load_s)
        load_cpu, load_wall = cpu_s() - cpu0, time.monotonic() - wall0
        load_polls = polls["ok"] + polls["failed"] - done_before
        lateness = list(sched.lateness_s)

        sched.update(watches(3600))  # every job's next run is an hour away: the process is idle
        await asyncio.sleep(2)  # let in-flight polls finish
        cpu1, wall1 = cpu_s(), time.monotonic()
        await asyncio.sleep(args.idle_s)
        idle_cpu, idle_wall = cpu_s() - cpu1, time.monotonic() - wall1
        await sched.shutdown()
    for fake in fakes.values():
        await fake.close()
    return {
        "watches": args.watches,
        "platforms": names,
        "interval_s": args.interval,
        "load_s": round(load_wall, 1),
        "polls": load_polls,
        "polls_per_s": round(load_polls / load_wall, 1),
        "failed_total": polls["failed"],
        "missed": sched.missed,
        "skipped_overlap": sched.skipped_overlap,
        "lateness_ms": {
            "p50": round(1000 * pct(lateness, 0.5), 1),
            "p99": round(1000 * pct(lateness, 0.99), 1),
            "max": round(1000 * max(lateness, default=float("nan")), 1),
            "mean": round(1000 * statistics.fmean(lateness), 1) if lateness else None,
        },
        "load_cpu_pct": round(100 * load_cpu / load_wall, 1),
        "cpu_ms_per_poll": round(1000 * load_cpu / max(1, load_polls), 2),
        "idle_s": round(idle_wall, 1),
        "idle_cpu_pct": round(100 * idle_cpu / idle_wall, 2),
        "machine": f"{platform.machine()}, {os.cpu_count()} cpus, Python {platform.python_version()}",
    }


def table(result: dict[str, Any]) -> str:
    lat = result["lateness_ms"]
    rows = [
        (
            "watches × platforms",
            f"{result['watches']} watches over {len(result['platforms'])} platforms "
            f"({', '.join(result['platforms'])}), interval {result['interval_s']:g}s",
        ),
        (
            "polls measured",
            f"{result['polls']} in {result['load_s']}s ({result['polls_per_s']}/s), "
            f"{result['failed_total']} failed, {result['missed']} missed, "
            f"{result['skipped_overlap']} skipped as overlapping",
        ),
        ("poll start lateness", f"p50 {lat['p50']} ms, p99 {lat['p99']} ms, max {lat['max']} ms"),
        (
            "CPU under load",
            f"{result['load_cpu_pct']}% of a core ({result['cpu_ms_per_poll']} ms per poll, fake servers included)",
        ),
        ("CPU idle between polls", f"{result['idle_cpu_pct']}% of a core over {result['idle_s']}s"),
    ]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"| {k.ljust(width)} | {v} |" for k, v in [("measure", "result"), ("-" * width, "---"), *rows])


def write_results(result: dict[str, Any], command: str) -> None:
    out = HERE / "out"
    out.mkdir(exist_ok=True)
    (out / "sources.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    section = (
        f"{HEADING}\n\n`{command}` on {result['machine']}. The six fake platform servers run in the same "
        "process and answer every poll; lateness is a poll's start (after the per-platform concurrency "
        "limit) minus its scheduled time, jitter excluded.\n\n" + table(result) + "\n"
    )
    results = HERE / "RESULTS.md"
    text = results.read_text(encoding="utf-8") if results.exists() else "# Benchmark results\n"
    if HEADING in text:
        start = text.index(HEADING)
        following = text.find("\n## ", start + len(HEADING))
        text = text[:start] + section + (text[following + 1 :] if following != -1 else "")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    results.write_text(text, encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--watches", type=int, default=500)
    parser.add_argument(
        "--interval", type=float, default=15.0, help="poll interval of every watch during the load phase"
    )
    parser.add_argument("--load-s", type=float, default=45.0)
    parser.add_argument("--idle-s", type=float, default=20.0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    result = asyncio.run(run(args))
    print(table(result))
    write_results(result, "python bench/bench_sources.py " + " ".join(sys.argv[1:]))


if __name__ == "__main__":
    main()
