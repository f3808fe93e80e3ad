"""Memory over time: the resident set of a process while a million mentions flow through the ingest path.

A child process runs `Pipeline.ingest` over a generated stream (see streams.py) in poll-sized
batches, with a real SQLite file and 20 rules (the shipped library, topped up with
bench/rules/synthetic.yaml, some of which keep state per author and per hashtag on purpose).
It prints a line at every percent of progress; the parent reads VmRSS and VmHWM from
/proc/<pid>/status at each line, so the measurement adds nothing to the measured process.
Goal: under 150 MB, and flat after warm-up (growth from 10 % to 100 % under 10 %).

    python bench/bench_memory.py                  # 1,000,000 mentions
    python bench/bench_memory.py --n 200000
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

import benchlib

NAME = "memory"
RULES = 20
SYNTHETIC = benchlib.BENCH / "rules" / "synthetic.yaml"
GOAL_MB = 150.0
GOAL_GROWTH = 0.10
CHECKPOINTS = (10, 50, 100)


def child(n: int, seed: int, batch: int, db_path: Path) -> int:
    """The measured process: ingest the stream, say `progress <percent> <mentions>` at every percent."""
    from streams import StreamSpec, chunks, json_lines

    from listener.mention import Mention
    from listener.pipeline import Pipeline
    from listener.rules import load_rules
    from listener.rules.engine import Engine
    from listener.sentiment import SentimentScorer
    from listener.store import Store

    shipped = load_rules([benchlib.SHIPPED_RULES]).rules
    rules = shipped + load_rules([SYNTHETIC]).rules[: max(0, RULES - len(shipped))]
    store = Store(db_path)
    pipeline = Pipeline(store, SentimentScorer(), Engine(rules))
    print(f"rules {len(rules)}", flush=True)
    print("progress 0 0", flush=True)
    done = alerts = 0
    reported = 0
    for number, lines in enumerate(chunks(json_lines(StreamSpec(n=n, seed=seed)), batch)):
        result = pipeline.ingest([Mention.from_json(line) for line in lines], cursor=("bench:memory", str(number)))
        done += len(lines)
        alerts += len(result.alerts)
        percent = done * 100 // n
        if percent > reported:
            reported = percent
            print(f"progress {percent} {done}", flush=True)
    store.close()
    print(f"alerts {alerts}", flush=True)
    return 0


def status_kb(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak) of a process, in kB, from /proc."""
    out = {}
    with open(f"/proc/{pid}/status", encoding="ascii") as handle:
        for line in handle:
            if line.startswith(("VmRSS:", "VmHWM:")):
                key, value = line.split(":", 1)
                out[key] = int(value.split()[0])
    return out


def watch(n: int, seed: int, batch: int, db_path: Path) -> dict[str, Any]:
    command = [sys.executable, str(Path(__file__).resolve()), "--child", "--n", str(n), "--seed", str(seed),
               "--batch", str(batch), "--db", str(db_path)]
    samples: list[dict[str, Any]] = []
    rules = alerts = None
    started = time.monotonic()
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=benchlib.BENCH) as process:
        assert process.stdout is not None
        for line in process.stdout:
            word, _, rest = line.strip().partition(" ")
            if word == "progress":
                percent, done = (int(x) for x in rest.split())
                kb = status_kb(process.pid)
                samples.append({"percent": percent, "mentions": done, "rss_mb": round(kb["VmRSS"] / 1024, 1),
                                "peak_mb": round(kb["VmHWM"] / 1024, 1),
                                "elapsed_s": round(time.monotonic() - started, 2)})
            elif word == "rules":
                rules = int(rest)
            elif word == "alerts":
                alerts = int(rest)
        code = process.wait()
    if code != 0:
        raise SystemExit(f"the measured process failed with exit code {code}")
    return {"samples": samples, "rules": rules, "alerts": alerts,
            "db_mb": round(db_path.stat().st_size / 2**20, 1) if db_path.exists() else None}


def at(samples: list[dict[str, Any]], percent: int) -> dict[str, Any]:
    """The first sample at or past `percent`."""
    return next(s for s in samples if s["percent"] >= percent)


def main(argv: Sequence[str] | None = None) -> int:
    p = benchlib.parser(NAME, __doc__.splitlines()[0], n=1_000_000)
    p.add_argument("--batch", type=int, default=500, help="mentions per ingest call (default 500)")
    p.add_argument("--child", action="store_true", help="(internal) be the measured process")
    p.add_argument("--db", type=Path, help="(internal) the measured process's SQLite file")
    args = p.parse_args(argv)
    if args.child:
        return child(args.n, args.seed, args.batch, args.db)
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp:
        outcome = watch(args.n, args.seed, args.batch, Path(tmp) / "memory.db")
    samples = outcome["samples"]
    points = {c: at(samples, c) for c in CHECKPOINTS}
    peak = max(s["peak_mb"] for s in samples)
    growth = (points[100]["rss_mb"] - points[10]["rss_mb"]) / points[10]["rss_mb"]
    under = peak < GOAL_MB
    flat = growth < GOAL_GROWTH
    print(f"Memory over time: {args.n:,} mentions through Pipeline.ingest with {outcome['rules']} rules, "
          f"batches of {args.batch}; {outcome['alerts']} alert messages; SQLite file {outcome['db_mb']} MB\n")
    print(benchlib.table(["progress", "mentions", "RSS MB", "peak MB", "elapsed s"],
                         [[f"{c}%", points[c]["mentions"], points[c]["rss_mb"], points[c]["peak_mb"],
                           points[c]["elapsed_s"]] for c in CHECKPOINTS]))
    print(f"\nGoal: under {GOAL_MB:g} MB: {benchlib.verdict(under)} (peak {peak} MB); flat after warm-up "
          f"(10% -> 100% growth under {GOAL_GROWTH:.0%}): {benchlib.verdict(flat)} ({growth:+.1%})")
    path = benchlib.write_result(NAME, args.out, {
        "n": args.n, "seed": args.seed, "batch": args.batch, "rules": outcome["rules"], "alerts": outcome["alerts"],
        "db_mb": outcome["db_mb"], "checkpoints": {str(c): points[c] for c in CHECKPOINTS}, "peak_mb": peak,
        "growth_10_to_100": round(growth, 4),
        "goal": {"under_mb": GOAL_MB, "growth_under": GOAL_GROWTH, "met": under and flat},
        "samples": samples,
    })
    print(f"\nwritten: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
