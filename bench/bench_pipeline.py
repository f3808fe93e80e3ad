"""Pipeline throughput: the whole ingest path against bare VADER scoring of the same texts, in one run.

A generated stream (see streams.py) goes through `Pipeline.ingest` in poll-sized batches: JSON
to Mention, dedupe against the store, VADER, insert into a real SQLite file, the shipped rules,
the outbox and the source cursor, one transaction per batch. Each batch's texts are also scored
by a bare `SentimentIntensityAnalyzer`, interleaved batch by batch so that both rates see the
same machine load. Goal: the whole path at no less than half of VADER's bare rate.

Then a shorter profiled pass (cProfile) says where the time goes, by stage and by function.

    python bench/bench_pipeline.py                 # 200,000 mentions
    python bench/bench_pipeline.py --n 20000 --profile 0
"""

from __future__ import annotations

import cProfile
import json
import pstats
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

import benchlib
from streams import StreamSpec, chunks, describe, json_lines
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from listener.mention import Mention
from listener.pipeline import Pipeline
from listener.rules import load_rules
from listener.rules.engine import Engine
from listener.sentiment import SentimentScorer
from listener.store import Store

NAME = "pipeline"
GOAL_RATIO = 0.5

# Stages of one ingest, found in the profile by (file suffix, function name).
STAGES = [
    ("parse JSON into Mention", "listener/mention.py", "from_json"),
    ("dedupe against the store", "listener/store.py", "new_mentions"),
    ("VADER scoring", "listener/sentiment.py", "score_mentions"),
    ("insert into SQLite", "listener/store.py", "insert_mentions"),
    ("rules (engine)", "listener/rules/engine.py", "process"),
    ("outbox", "listener/store.py", "enqueue"),
    ("cursor", "listener/store.py", "set_cursor"),
]


def run_stream(spec: StreamSpec, rules_path: Path, batch: int, db_path: Path) -> dict[str, Any]:
    """Both loops over one stream, interleaved per batch; returns counts and seconds."""
    rules = load_rules([rules_path]).rules
    store = Store(db_path)
    pipeline = Pipeline(store, SentimentScorer(), Engine(rules))
    bare = SentimentIntensityAnalyzer()
    pipe_s = vader_s = 0.0
    received = new = alerts = 0
    try:
        for number, lines in enumerate(chunks(json_lines(spec), batch)):
            texts = [json.loads(line)["text"] for line in lines]  # untimed: only the bare loop needs them
            # Alternate which loop goes first so neither always gets the warmer cache.
            for step in ((0, 1) if number % 2 == 0 else (1, 0)):
                if step == 0:
                    t0 = time.perf_counter()
                    for text in texts:
                        bare.polarity_scores(text)
                    vader_s += time.perf_counter() - t0
                else:
                    t0 = time.perf_counter()
                    mentions = [Mention.from_json(line) for line in lines]
                    result = pipeline.ingest(mentions, cursor=("bench:stream", str(number)))
                    pipe_s += time.perf_counter() - t0
                    new += len(result.new)
                    alerts += len(result.alerts)
            received += len(lines)
        stored = store.mention_count()
        queued = store.pending_count()
    finally:
        store.close()
    return {"received": received, "new": new, "stored": stored, "alerts": alerts, "outbox": queued,
            "pipeline_s": pipe_s, "vader_s": vader_s, "rules": [r.id for r in rules]}


def profile_stream(spec: StreamSpec, rules_path: Path, batch: int, db_path: Path) -> dict[str, Any]:
    """One profiled pass of the pipeline alone; time per stage and the costliest functions."""
    rules = load_rules([rules_path]).rules
    store = Store(db_path)
    pipeline = Pipeline(store, SentimentScorer(), Engine(rules))
    batches = list(chunks(json_lines(spec), batch))  # generated before profiling starts

    def work() -> None:
        for number, lines in enumerate(batches):
            pipeline.ingest([Mention.from_json(line) for line in lines], cursor=("bench:stream", str(number)))

    profiler = cProfile.Profile()
    try:
        profiler.runcall(work)
    finally:
        store.close()
    stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    total = sum(tt for (_cc, _nc, tt, _ct, _callers) in stats.values())
    stages = []
    accounted = 0.0
    for label, suffix, func in STAGES:
        ct = sum(v[3] for (file, _line, name), v in stats.items() if name == func and file.endswith(suffix))
        accounted += ct
        stages.append({"stage": label, "s": round(ct, 4), "share": round(ct / total, 4) if total else 0})
    rest = max(total - accounted, 0.0)
    stages.append({"stage": "everything else (commit, sort, loop)", "s": round(rest, 4),
                   "share": round(rest / total, 4) if total else 0})
    top = sorted(stats.items(), key=lambda kv: kv[1][2], reverse=True)[:12]
    functions = [{"function": f"{_short(file)}:{line}({name})", "calls": v[1], "own_s": round(v[2], 4),
                  "share": round(v[2] / total, 4) if total else 0} for (file, line, name), v in top]
    return {"mentions": sum(len(b) for b in batches), "profiled_s": round(total, 3), "stages": stages,
            "functions": functions}


def _short(file: str) -> str:
    for marker in ("/listener/", "/vaderSentiment/", "/sqlite_utils/", "/bench/"):
        if marker in file:
            return marker.strip("/") + "/" + file.split(marker, 1)[1]
    return file.rsplit("/", 1)[-1]


def main(argv: Sequence[str] | None = None) -> int:
    p = benchlib.parser(NAME, __doc__.splitlines()[0], n=200_000)
    p.add_argument("--batch", type=int, default=500, help="mentions per ingest call, like one poll cycle (default 500)")
    p.add_argument("--rules", type=Path, default=benchlib.SHIPPED_RULES,
                   help="rule files (default: the shipped library)")
    p.add_argument("--profile", type=int, default=20_000, metavar="N",
                   help="also profile the pipeline on the first N mentions (0: no profile; default 20,000)")
    args = p.parse_args(argv)
    spec = StreamSpec(n=args.n, seed=args.seed)
    with tempfile.TemporaryDirectory(prefix="bench-pipeline-") as tmp:
        run = run_stream(spec, args.rules, args.batch, Path(tmp) / "stream.db")
        profile = None
        if args.profile > 0:
            profile = profile_stream(StreamSpec(n=min(args.profile, args.n), seed=args.seed), args.rules,
                                     args.batch, Path(tmp) / "profile.db")
    pipe_rate = run["received"] / run["pipeline_s"]
    vader_rate = run["received"] / run["vader_s"]
    ratio = pipe_rate / vader_rate
    print(f"Pipeline throughput: {run['received']:,} mentions ({run['new']:,} new, {run['alerts']} alert messages), "
          f"batches of {args.batch}, rules: {', '.join(run['rules'])}\n")
    print(benchlib.table(
        ["path", "seconds", "mentions/s", "ratio to VADER"],
        [["bare VADER (polarity_scores)", run["vader_s"], vader_rate, 1.0],
         ["whole ingest path (Pipeline.ingest)", run["pipeline_s"], pipe_rate, ratio]]))
    print(f"\nGoal: whole path >= {GOAL_RATIO:.0%} of bare VADER: {benchlib.verdict(ratio >= GOAL_RATIO)} "
          f"({ratio:.2f})")
    if profile is not None:
        print(f"\nWhere the time goes (cProfile, {profile['mentions']:,} mentions, {profile['profiled_s']} s "
              "profiled; the profiler inflates Python-heavy stages):\n")
        print(benchlib.table(["stage", "seconds", "share"],
                             [[s["stage"], s["s"], f"{s['share']:.1%}"] for s in profile["stages"]]))
        print()
        print(benchlib.table(["function (own time)", "calls", "seconds", "share"],
                             [[f["function"], f["calls"], f["own_s"], f"{f['share']:.1%}"]
                              for f in profile["functions"]]))
    path = benchlib.write_result(NAME, args.out, {
        "stream": describe(spec), "batch": args.batch, **run,
        "pipeline_per_s": round(pipe_rate, 1), "vader_per_s": round(vader_rate, 1), "ratio": round(ratio, 4),
        "goal": {"ratio_at_least": GOAL_RATIO, "met": ratio >= GOAL_RATIO}, "profile": profile,
    })
    print(f"\nwritten: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
