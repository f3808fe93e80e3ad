"""Run the benchmarks (`./dev bench`): every bench/bench_*.py in turn, each with its own defaults.

    ./dev bench                      # all of them, in name order
    ./dev bench pipeline latency     # only these (bench_pipeline.py, bench_latency.py)
    ./dev bench --skip memory        # all but these
    ./dev bench --list               # what there is

Each script prints its table and writes bench/out/<name>.json. A failing script does not stop
the others; the exit code is 1 when any failed. Benchmarks never run as tests.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path
from typing import Sequence

BENCH = Path(__file__).resolve().parent


def available() -> dict[str, Path]:
    """name -> script, for every bench_<name>.py here."""
    return {p.stem.removeprefix("bench_"): p for p in sorted(BENCH.glob("bench_*.py"))}


def _name(text: str) -> str:
    return Path(text).stem.removeprefix("bench_")


def main(argv: Sequence[str] | None = None) -> int:
    scripts = available()
    p = argparse.ArgumentParser(prog="run_all.py", description=__doc__.splitlines()[0])
    p.add_argument("names", nargs="*", metavar="NAME", help=f"benchmarks to run (default all: {', '.join(scripts)})")
    p.add_argument("--skip", nargs="+", default=[], metavar="NAME", help="benchmarks to leave out")
    p.add_argument("--list", action="store_true", help="list the benchmarks and their first doc line, then exit")
    args = p.parse_args(argv)
    if args.list:
        for name, path in scripts.items():
            print(f"{name:<12} {_first_doc_line(path)}")
        return 0
    unknown = [n for n in [*args.names, *args.skip] if _name(n) not in scripts]
    if unknown:
        p.error(f"no such benchmark: {', '.join(unknown)} (there are: {', '.join(scripts)})")
    chosen = [_name(n) for n in args.names] or list(scripts)
    chosen = [n for n in chosen if n not in {_name(s) for s in args.skip}]
    results = []
    for name in chosen:
        print(f"\n=== {name} ({scripts[name].name}) ===\n", flush=True)
        started = time.monotonic()
        code = subprocess.call([sys.executable, str(scripts[name])], cwd=BENCH.parent)
        results.append((name, code, time.monotonic() - started))
    print("\n=== summary ===\n")
    for name, code, seconds in results:
        print(f"{name:<12} {'ok' if code == 0 else f'FAILED (exit {code})':<16} {seconds:7.1f} s")
    print(f"\nresults in {BENCH / 'out'}/<name>.json")
    return 0 if all(code == 0 for _, code, _ in results) else 1


def _first_doc_line(path: Path) -> str:
    for line in path.read_text(encoding="utf-8").splitlines():
        stripped = line.strip().strip('"').strip()
        if stripped:
            return stripped
    return ""


if __name__ == "__main__":
    sys.exit(main())
