"""Rule library quality: what the shipped rules catch of what they are for, and what else they fire on.

Usage: python bench/bench_rules.py [--rules rules] [--eval rules/eval] [--vader-data ../shared/data/vader]
                                   [--out bench/out] [--show-misses]

Three measures, each on text the rules were not written from (see rules/eval/README.md for how the
sets were made and in which order they were used):

* labelled posts (rules/eval/posts/round*.jsonl): for each single-post rule (crisis, threats, tips),
  recall on the posts of its class and false alarms on the posts of every other class;
* ordinary mentions (rules/eval/posts/background.jsonl): how many of them each rule fires on;
* recordings (rules/eval/scenarios/*.jsonl, expected.yaml): each replayed through the whole path
  (store, VADER, every shipped rule) as `listener replay` does; the wanted alerts, how soon after
  the event began they fired, and every other alert (a false alarm).

With `--vader-data`, also how many of VADER's 23,703 human-rated texts (tweets, reviews,
editorials; none about crisis, threats or tips) each single-post rule fires on.
"""

from __future__ import annotations

import json
import sys
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

from bench_sentiment import CORPORA, read_corpus
from benchlib import parser as bench_parser, write_result

from listener.alert import Alert
from listener.backtest import run_backtest
from listener.mention import Mention
from listener.paths import SHIPPED_RULES
from listener.rules import load_rules
from listener.rules.filters import Predicate, RegexBank, compile_match, features
from listener.rules.model import RuleBase
from listener.rules.training import held_out
from listener.yamlfile import load_yaml, plain

ROOT = Path(__file__).resolve().parent.parent
EVAL = ROOT / "rules" / "eval"
# The single-post rules and the label of the posts each is for.
CLASSES = {"person-in-crisis": "crisis", "threat-against-officers": "threat", "crime-tip": "tip"}


@dataclass
class PostScore:
    """One rule on one labelled set."""

    positives: int = 0
    caught: int = 0
    negatives: int = 0
    false_alarms: int = 0
    missed: list[str] = field(default_factory=list)
    wrongly: list[str] = field(default_factory=list)

    @property
    def recall(self) -> float:
        return self.caught / self.positives if self.positives else 0.0


def single_post_rules(rules: list[RuleBase]) -> dict[str, Predicate]:
    bank = RegexBank()
    return {r.id: compile_match(r.match, bank) for r in rules if r.id in CLASSES}


def _mention(text: str, i: int) -> Mention:
    # As a mention of one of our accounts: the way most such posts reach the team.
    return Mention.from_dict({"platform": "x", "id": str(i), "text": text, "author": f"author{i}",
                              "created_at": "2026-01-01T00:00:00Z", "watch": "metro-police", "watch_kind": "account"})


def fired(predicates: dict[str, Predicate], text: str, i: int) -> set[str]:
    m = _mention(text, i)
    f = features(text)
    return {rule for rule, passes in predicates.items() if passes(m, lambda: f)}


def score_posts(predicates: dict[str, Predicate], posts: Iterable[dict[str, Any]]) -> dict[str, PostScore]:
    scores = {rule: PostScore() for rule in predicates}
    for i, post in enumerate(posts):
        hits = fired(predicates, post["text"], i)
        for rule, s in scores.items():
            mine = post["label"] == CLASSES[rule]
            if mine:
                s.positives += 1
                if rule in hits:
                    s.caught += 1
                else:
                    s.missed.append(post["text"])
            else:
                s.negatives += 1
                if rule in hits:
                    s.false_alarms += 1
                    s.wrongly.append(post["text"])
    return scores


def read_posts(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@dataclass
class ScenarioOutcome:
    name: str
    wanted: list[dict[str, Any]]  # each with the first matching firing, or None, and how late it was
    false_alarms: list[str]

    @property
    def ok(self) -> bool:
        return not self.false_alarms and all(w["on_time"] for w in self.wanted)


def _ts(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def run_scenario(path: Path, want: list[dict[str, Any]], rules: list[RuleBase]) -> ScenarioOutcome:
    """Replay one recording through the whole path and hold its alerts against what is wanted."""
    alerts: list[Alert] = []
    with tempfile.TemporaryDirectory() as tmp:
        _, store = run_backtest(path, rules, Path(tmp) / "replay.db", on_alert=alerts.append)
        store.close()
    firing = [a for a in alerts if a.status == "firing"]
    used: set[int] = set()
    wanted = []
    for w in want:
        match = next((i for i, a in enumerate(firing) if a.rule == w["rule"]
                      and all(a.group.get(k) == v for k, v in w["group"].items())), None)
        first = firing[match] if match is not None else None
        if first is not None:  # the episode's later messages (an escalation) are the same alert
            used |= {i for i, a in enumerate(firing) if a.id == first.id}
        at = first.fired_at_ts if first is not None else None
        wanted.append({
            "rule": w["rule"], "group": w["group"], "from": w["from"], "by": w["by"],
            "fired_at": None if at is None else datetime.fromtimestamp(at, timezone.utc).isoformat(timespec="seconds"),
            "after_s": None if at is None else round(at - _ts(w["from"])),
            "on_time": at is not None and _ts(w["from"]) <= at <= _ts(w["by"]),
        })
    others = [f"{a.rule} {a.group_key}: {a.title}" for i, a in enumerate(firing) if i not in used]
    return ScenarioOutcome(path.name, wanted, others)


def read_expected(path: Path) -> dict[str, dict[str, Any]]:
    """expected.yaml: recording file name -> {"want": [{rule, group, from, by}, ...]}."""
    data: dict[str, dict[str, Any]] = plain(load_yaml(path.read_text(encoding="utf-8"), str(path)))
    return data


def vader_texts(data: Path) -> list[str] | None:
    """The texts of VADER's four human-rated corpora in `data` (as bench_sentiment reads them), or None."""
    paths = [data / name for name in CORPORA.values()]
    if not all(path.is_file() for path in paths):
        return None
    return [item.text for path in paths for item in read_corpus(path)]


def unseen_share(rules: list[RuleBase]) -> float:
    """The share of ordinary texts that no classifier the rules use was trained on (1.0 without
    classifiers): each model records the share it held out, chosen by `held_out`."""
    shares = [c.text_model().trained.get("ordinary_held_out", 0.0)
              for r in rules for c in r.classifiers()]
    return min(shares, default=1.0)


def vader_false_alarms(predicates: dict[str, Predicate], texts: list[str]) -> dict[str, list[str]]:
    """Per rule, the texts it fires on."""
    out: dict[str, list[str]] = {rule: [] for rule in predicates}
    for i, text in enumerate(texts):
        for rule in fired(predicates, text, i):
            out[rule].append(text)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = bench_parser("rules", __doc__.splitlines()[0])
    parser.add_argument("--rules", default=str(SHIPPED_RULES))
    parser.add_argument("--eval", default=str(EVAL), help="the evaluation sets (posts/, scenarios/)")
    parser.add_argument("--vader-data", default=str(ROOT.parent / "shared" / "data" / "vader"))
    parser.add_argument("--show-misses", action="store_true", help="print every missed post and false alarm")
    args = parser.parse_args(argv)

    rules = load_rules([args.rules]).rules
    predicates = single_post_rules(rules)
    eval_dir = Path(args.eval)
    result: dict[str, Any] = {"rules": args.rules, "posts": {}, "scenarios": {}}

    print(f"\nSingle-post rules on labelled posts ({eval_dir / 'posts'})")
    print(f"  {'set':<12} {'rule':<26} {'recall':>14} {'false alarms':>16}")
    for path in sorted((eval_dir / "posts").glob("*.jsonl")):
        posts = read_posts(path)
        scores = score_posts(predicates, posts)
        result["posts"][path.stem] = {rule: {"positives": s.positives, "caught": s.caught, "recall": round(s.recall, 3),
                                             "negatives": s.negatives, "false_alarms": s.false_alarms}
                                      for rule, s in scores.items()}
        for rule, s in scores.items():
            recall = f"{s.caught}/{s.positives} {s.recall:.0%}" if s.positives else "-"
            print(f"  {path.stem:<12} {rule:<26} {recall:>14} {s.false_alarms:>6} of {s.negatives:<6}")
            if args.show_misses:
                for text in s.missed:
                    print(f"      missed: {text}")
                for text in s.wrongly:
                    print(f"      false alarm: {text}")

    print(f"\nRecordings through the whole path ({eval_dir / 'scenarios'})")
    expected = read_expected(eval_dir / "scenarios" / "expected.yaml")
    for name, spec in expected.items():
        outcome = run_scenario(eval_dir / "scenarios" / name, spec.get("want") or [], rules)
        result["scenarios"][name] = {"ok": outcome.ok, "wanted": outcome.wanted, "false_alarms": outcome.false_alarms}
        print(f"  {name:<22} {'ok' if outcome.ok else 'NOT OK'}")
        for w in outcome.wanted:
            when = "missed" if w["fired_at"] is None else f"fired {w['after_s'] / 60:.1f} min after it began"
            print(f"      {w['rule']} {w['group']}: {when}{'' if w['on_time'] else ' (too late)'}")
        for text in outcome.false_alarms:
            print(f"      false alarm: {text}")

    texts = vader_texts(Path(args.vader_data))
    if texts is None:
        print(f"\nVADER's corpora are not at {args.vader_data}: skipped (--vader-data)")
    else:
        vader = vader_false_alarms(predicates, texts)
        share = unseen_share(rules)
        unseen = {t for t in texts if held_out(t, share)}
        result["vader_false_alarms"] = {rule: len(fired_on) for rule, fired_on in vader.items()}
        result["vader_false_alarms_unseen"] = {rule: sum(t in unseen for t in fired_on)
                                               for rule, fired_on in vader.items()}
        result["vader_unseen_texts"] = len(unseen)
        print(f"\nSingle-post rules on VADER's {len(texts):,} human-rated texts (none about crisis, threats or tips);"
              f"\n  of them, {len(unseen):,} no classifier of the rules was trained on")
        print(f"  {'rule':<26} {'all':>6} {'unseen':>8}")
        for rule, fired_on in vader.items():
            print(f"  {rule:<26} {len(fired_on):>6} {sum(t in unseen for t in fired_on):>8}")
            if args.show_misses:
                for text in fired_on:
                    print(f"      false alarm{'' if text in unseen else ' (trained on)'}: {text}")

    print(f"\n  written to {write_result('rules', args.out, result)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
