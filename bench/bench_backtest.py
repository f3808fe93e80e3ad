"""Backtest speed: `listener replay` over a generated file of recorded mentions, in mentions per second.

A JSON Lines replay file is generated in a temporary folder (see streams.py; not timed), then
`listener replay FILE --rules rules/ --format jsonl` runs on it as a user would run it, in a
subprocess, alerts to a pipe. The figure is lines read per second of wall time, start-up included.

Goal: a month of a busy service's mentions backtested in under a minute. A busy service here
is 10,000 mentions a day (`--busy-per-day`): its accounts, its officers' accounts and its
campaign hashtags on every platform together, on an ordinary day; a month is 30 such days.

    python bench/bench_backtest.py                 # 1,000,000 mentions
    python bench/bench_backtest.py --n 100000
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Sequence

import benchlib
from streams import StreamSpec, describe, write_jsonl

NAME = "backtest"
GOAL_S = 60.0
DAYS = 30


def replay(path: Path, rules: Path) -> tuple[float, int, str]:
    """Run `listener replay`; returns wall seconds, alert lines printed, and its stderr summary."""
    command = [sys.executable, "-m", "listener", "replay", str(path), "--rules", str(rules), "--format", "jsonl"]
    started = time.perf_counter()
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          cwd=benchlib.ROOT) as process:
        out, err = process.communicate()
    elapsed = time.perf_counter() - started
    if process.returncode != 0:
        raise SystemExit(f"listener replay failed ({process.returncode}):\n{err}")
    return elapsed, sum(1 for line in out.splitlines() if line.strip()), err


def main(argv: Sequence[str] | None = None) -> int:
    p = benchlib.parser(NAME, __doc__.splitlines()[0], n=1_000_000)
    p.add_argument("--rules", type=Path, default=benchlib.SHIPPED_RULES,
                   help="rule files (default: the shipped library)")
    p.add_argument("--busy-per-day", type=int, default=10_000,
                   help="mentions a day of a busy service, for the goal (default 10,000)")
    args = p.parse_args(argv)
    spec = StreamSpec(n=args.n, seed=args.seed)
    with tempfile.TemporaryDirectory(prefix="bench-backtest-") as tmp:
        path = Path(tmp) / "recorded.jsonl"
        t0 = time.perf_counter()
        lines = write_jsonl(path, spec)
        generated_s = time.perf_counter() - t0
        size_mb = path.stat().st_size / 2**20
        elapsed, alerts, summary = replay(path, args.rules)
    rate = lines / elapsed
    month = args.busy_per_day * DAYS
    month_s = month / rate
    met = month_s < GOAL_S
    capacity_per_day = rate * GOAL_S / DAYS
    first = summary.strip().splitlines()[0] if summary.strip() else ""
    print(f"Backtest speed: listener replay over {lines:,} mentions ({size_mb:.0f} MB of JSON Lines, "
          f"{spec.per_day:,.0f} a day of event time; generated in {generated_s:.1f} s, not timed)")
    print(f"replay says: {first}\n")
    print(benchlib.table(["what", "value"], [
        ["wall time, start-up included (s)", elapsed],
        ["mentions per second", rate],
        ["alert messages printed", alerts],
        [f"a month of a busy service ({args.busy_per_day:,}/day x {DAYS}) (s)", month_s],
        ["mentions a day whose month replays in 60 s", capacity_per_day],
    ]))
    print(f"\nGoal: a month of a busy service in under {GOAL_S:g} s: {benchlib.verdict(met)} ({month_s:.1f} s)")
    out = benchlib.write_result(NAME, args.out, {
        "stream": describe(spec), "rules": str(args.rules), "lines": lines, "file_mb": round(size_mb, 1),
        "wall_s": round(elapsed, 3), "per_s": round(rate, 1), "alerts": alerts, "replay_summary": summary.strip(),
        "busy_per_day": args.busy_per_day, "month_mentions": month, "month_s": round(month_s, 2),
        "capacity_per_day_in_60s": round(capacity_per_day), "goal": {"month_under_s": GOAL_S, "met": met},
    })
    print(f"\nwritten: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
