"""Rule engine speed and memory: the shipped library plus synthetic rules over a large generated stream.

Usage: python bench/bench_engine.py [--mentions 200000] [--days 7] [--out bench/out/engine.json]

Reports the engine's rate (mentions per second, rules evaluated on each) next to VADER's own
scoring rate on the same texts, the two taken batch by batch in turn (so that the machine's load
falls on both alike), the same for the shipped library alone, and the
process's resident memory at 25, 50 and 100 % of the stream, with the engine's live state
(groups, windowed mentions, timers):
windows evict and idle groups are forgotten, so memory stays flat as the stream goes on.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import random
import sys
import time
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable

from pydantic import TypeAdapter

from listener import native
from listener.demo.scenario import CHATTER, CRITICISM, DEFENDERS, THANKS
from listener.mention import Mention
from listener.paths import SHIPPED_RULES
from listener.rules import Engine, load_rules
from listener.rules.model import Rule, RuleBase
from listener.sentiment import SentimentScorer

START = datetime(2026, 3, 2, 0, 0, tzinfo=timezone.utc)
WATCHES = [("metro-police", "account"), ("const-daniels", "account"), ("sgt-rivera", "account"),
           ("officer-chen", "account"), ("metrocares", "hashtag"), ("hacktps", "hashtag"),
           ("lipsync-video", "post"), ("food-drive", "post"), ("missing-person", "query")]
RARE = ["I can't do this anymore, nobody would even notice", "I know who stole the bikes from the library",
        "someone should burn the station down", "i want to die of embarrassment lol"]
TAGS = ["MetroCares", "HackTPS", "RoadSafety", "Toronto", "police", "CommunityFirst"]

SYNTHETIC: list[dict[str, Any]] = [
    {"id": "syn-volume-per-author", "kind": "threshold", "window": "10m", "group_by": ["author"],
     "conditions": ["count >= 20"]},
    {"id": "syn-negative-per-hashtag", "kind": "threshold", "window": "30m", "group_by": ["hashtag"],
     "conditions": ["count >= 40", "share_negative >= 0.6"]},
    {"id": "syn-platform-mood", "kind": "sentiment_shift", "window": "2h", "group_by": ["platform"],
     "baseline": {"type": "trailing", "period": "1d"}, "drop": 0.3},
    {"id": "syn-platform-seasonal", "kind": "spike", "window": "1h", "group_by": ["platform"],
     "baseline": {"type": "seasonal", "weeks": 2, "min_weeks": 1}, "factor": 3, "min_count": 50},
    {"id": "syn-regex-plate", "kind": "match", "match": {"regex": r"\bplate\s+[a-z]{3}\s*\d"}},
    {"id": "syn-phrases", "kind": "match", "group_by": ["watch"],
     "match": {"any": ["speed trap", "non-emergency", "noise complaint"], "sentiment": "negative"}},
    {"id": "syn-thread-unique", "kind": "threshold", "window": "1h", "group_by": ["thread"],
     "conditions": ["unique_authors >= 30"]},
    {"id": "syn-watch-platform", "kind": "threshold", "window": "15m", "group_by": ["watch", "platform"],
     "conditions": ["count >= 60"], "combine": "any"},
    {"id": "syn-lang-fr", "kind": "match", "match": {"langs": ["fr"], "any": ["police"]}},
    {"id": "syn-silent-platform", "kind": "flatline", "group_by": ["platform"], "silent_for": "30m"},
]


def generate(n: int, days: float, seed: int = 7) -> list[dict[str, Any]]:
    """`n` mentions over `days`, with daily rhythm, threads, hashtags and the odd burst."""
    rng = random.Random(seed)
    span = days * 86400
    out = []
    threads = [f"thread-{i}" for i in range(400)]
    for i in range(n):
        t = rng.random() * span
        if rng.random() < 0.5:  # busier by day than by night
            t = (t // 86400) * 86400 + 8 * 3600 + rng.random() * 12 * 3600
        kind = rng.random()
        if kind < 0.55:
            text = rng.choice(CHATTER)[0].format(at="@MetroPolice", tag=rng.choice(TAGS))
        elif kind < 0.75:
            text = "@MetroPolice " + rng.choice(THANKS)
        elif kind < 0.93:
            text = rng.choice(CRITICISM)
        elif kind < 0.9995:
            text = rng.choice(DEFENDERS) + f" #{rng.choice(TAGS)}"
        else:
            text = rng.choice(RARE)
        watch, wkind = rng.choice(WATCHES)
        out.append({
            "platform": rng.choice(["x", "x", "bluesky", "mastodon", "instagram"]), "id": f"b{i}",
            "url": f"https://example.test/b{i}", "author": f"user{rng.randrange(20000)}", "text": text,
            "lang": "fr" if rng.random() < 0.03 else "en",
            "created_at": (START + timedelta(seconds=t)).isoformat(), "watch": watch, "watch_kind": wkind,
            "thread": rng.choice(threads) if wkind == "post" or rng.random() < 0.3 else None,
        })
    out.sort(key=lambda d: d["created_at"])
    return out


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 1e6


def engine_state(engine: Engine) -> dict[str, int]:
    groups = windowed = 0
    for rule in engine.rules:
        rt = engine.runtime(rule.id)
        assert rt is not None
        windows = rt.windows()  # whole groups and small ones
        groups += len(windows)
        windowed += sum(len(w) for w in windows.values())
    return {"groups": groups, "windowed_mentions": windowed, "timers": len(engine._timers)}


FAMILIES = {"text": {"match"}, "threshold": {"threshold"}, "baseline": {"spike", "sentiment_shift"},
            "flatline": {"flatline"}}


def interleaved(engine: Engine, mentions: list[Mention], scorer: SentimentScorer, chunk: int,
                after: Callable[[int, int], None] | None = None) -> tuple[float, float, int]:
    """Seconds `engine.process` and VADER spend on the same batches, taken in turns (the order
    alternating) so that both see the same machine, and the alert messages the engine sent."""
    engine_s = vader_s = 0.0
    sent = 0
    for i, start in enumerate(range(0, len(mentions), chunk)):
        batch = mentions[start : start + chunk]
        for step in ((0, 1) if i % 2 == 0 else (1, 0)):
            t0 = time.perf_counter()
            if step == 0:
                sent += len(engine.process(batch))
                engine_s += time.perf_counter() - t0
            else:
                for m in batch:
                    scorer.score(m.text)
                vader_s += time.perf_counter() - t0
        if after is not None:
            after(start, start + len(batch))
    return engine_s, vader_s, sent


def count_calls(rules: list[RuleBase], mentions: list[Mention]) -> float:
    """Python-level calls per mention on a fresh engine: a measure of the engine's work that does
    not move with the machine's load, for comparing two versions of the engine."""
    import cProfile
    import pstats

    engine = Engine(rules)
    profile = cProfile.Profile()
    profile.enable()
    for start in range(0, len(mentions), 1000):
        engine.process(mentions[start : start + 1000])
    profile.disable()
    return round(pstats.Stats(profile).total_calls / max(1, len(mentions)), 1)  # type: ignore[attr-defined]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mentions", type=int, default=200_000)
    parser.add_argument("--days", type=float, default=7.0)
    parser.add_argument("--rules", default=str(SHIPPED_RULES))
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "out" / "engine.json"))
    parser.add_argument("--families", action="store_true",
                        help="with --calls: also count the calls without each family of rules (text, threshold, "
                             "baseline, flatline), to say what each family costs")
    parser.add_argument("--calls", type=int, default=40_000, metavar="N",
                        help="also count the Python-level calls the engine makes on the first N mentions "
                             "(cProfile; unlike time, the same in every run, so small changes show); 0: skip. "
                             "Only the pure-Python engine makes calls to count: with the compiled one, run "
                             f"with {native.PURE_ENV}=1 to count them")
    args = parser.parse_args(argv)

    shipped = load_rules([args.rules]).rules
    adapter: TypeAdapter[RuleBase] = TypeAdapter(Rule)
    rules = shipped + [adapter.validate_python(spec) for spec in SYNTHETIC[: max(0, 20 - len(shipped))]]

    print(f"generating {args.mentions} mentions over {args.days:g} days ...", file=sys.stderr)
    raw = generate(args.mentions, args.days)
    mentions = [Mention.from_dict(d) for d in raw]
    scorer = SentimentScorer()

    scored = [replace(m, sentiment=scorer.score(m.text)) for m in mentions]
    del raw, mentions
    # The benchmark's own input, all its mentions held at once, is not what a daemon holds (it reads
    # a batch at a time): kept out of the collector's way, so that neither the engine nor VADER pays
    # for traversing it again and again.
    gc.collect()
    gc.freeze()

    # Engine and VADER alternate batch by batch (which goes first alternates too), so that the
    # machine's ups and downs fall on both alike: the ratio is what the goal is about.
    engine = Engine(rules)
    checkpoints = {len(scored) // 4: 25, len(scored) // 2: 50, len(scored): 100}
    memory = []
    chunk = 1000
    base_rss = rss_mb()

    def watch_memory(start: int, done: int) -> None:
        for mark, pct in checkpoints.items():
            if start < mark <= done:
                memory.append({"percent": pct, "rss_mb": round(rss_mb(), 1), **engine_state(engine)})

    engine_s, vader_s, alerts = interleaved(engine, scored, scorer, chunk, watch_memory)

    # The shipped library alone, as a deployment runs it: is the engine the bottleneck there?
    shipped_s, shipped_vader_s, _ = interleaved(Engine(shipped), scored, scorer, chunk)

    build = native.status()
    pure = not build.startswith("compiled")
    calls = count_calls(rules, scored[: args.calls]) if args.calls and pure else None
    # What each family of rules costs, in Python-level calls per mention (time differences between
    # runs drown in this machine's noise; calls do not move): all 20 rules, less the rules without it.
    families: dict[str, dict[str, Any]] = {}
    if args.families and calls is not None:
        for family, kinds in FAMILIES.items():
            rest = [r for r in rules if r.kind not in kinds]
            if len(rest) < len(rules):
                families[family] = {"rules": len(rules) - len(rest),
                                    "calls_per_mention": round(calls - count_calls(rest, scored[: args.calls]), 1)}
    n = len(scored)
    result = {
        "mentions": n, "days": args.days, "engine_build": build, "rules": len(rules), "shipped_rules": len(shipped),
        "engine_mentions_per_s": round(n / engine_s), "vader_texts_per_s": round(n / vader_s),
        "engine_s": round(engine_s, 2), "vader_s": round(vader_s, 2), "alerts": alerts,
        "shipped_only_mentions_per_s": round(n / shipped_s), "shipped_vader_texts_per_s": round(n / shipped_vader_s),
        "ratio": round(vader_s / engine_s, 3), "shipped_ratio": round(shipped_vader_s / shipped_s, 3),
        "rss_before_engine_mb": round(base_rss, 1), "memory": memory,
        "calls_per_mention": calls, "calls_mentions": args.calls, "families": families,
        "python": platform.python_version(), "machine": platform.machine(), "cpus": os.cpu_count(),
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    print(f"\nRule engine ({build}): {n} mentions, {result['rules']} rules ({len(shipped)} shipped), "
          f"{args.days:g} days of event time")
    print(f"  {'engine':<8} {result['engine_mentions_per_s']:>9,} mentions/s  "
          f"({engine_s:.1f} s, {alerts} alert messages)  engine ÷ VADER {result['ratio']:.2f}")
    print(f"  {'VADER':<8} {result['vader_texts_per_s']:>9,} texts/s     ({vader_s:.1f} s, same texts, batch by batch "
          "in turn with the engine)")
    print(f"  {'shipped':<8} {result['shipped_only_mentions_per_s']:>9,} mentions/s  "
          f"({shipped_s:.1f} s, the {len(shipped)} shipped rules alone)  ÷ VADER {result['shipped_ratio']:.2f} "
          f"(VADER {result['shipped_vader_texts_per_s']:,}/s in turn with it)")
    if calls is not None:
        print(f"  {'calls':<8} {calls:>9} per mention (Python-level, first {args.calls:,} mentions)")
    elif args.calls:
        print(f"  {'calls':<8} not counted: the compiled engine makes none that cProfile sees ({native.PURE_ENV}=1 "
              "counts those of the pure-Python engine)")
    if families:
        print("  calls per mention each family of rules adds (all 20, less the rules without it):")
        for family, row in families.items():
            print(f"    {family:<10} {row['rules']:>2} rules  {row['calls_per_mention']:>7}")
    print(f"  {'at':>5} {'RSS MB':>8} {'groups':>8} {'windowed':>9} {'timers':>7}")
    for row in memory:
        print(f"  {row['percent']:>4}% {row['rss_mb']:>8} {row['groups']:>8} "
              f"{row['windowed_mentions']:>9} {row['timers']:>7}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"  written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
