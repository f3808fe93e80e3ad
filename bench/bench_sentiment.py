"""Sentiment accuracy on VADER's human-rated corpora (ICWSM 2014), through listener's scorer and vaderSentiment.

Data: the `*_GroundTruth.txt` files (tab-separated id, mean human rating -4..+4, text; CRLF),
read from `--data` (default `../shared/data/vader` next to the repository). Rules:
prediction positive if compound >= 0.05, negative if <= -0.05, else neutral; gold positive if
the human mean > 0, negative if < 0, neutral if = 0. Text as stored.

Reported per corpus: Pearson r (and Spearman) of compound against the human mean, three-class
accuracy and macro-F1, macro-F1 over positive and negative, and precision / recall / F1 over
positive and negative weighted by support (the paper's "overall" figures). The scores of
`listener.sentiment.SentimentScorer` with no overrides must equal vaderSentiment's own; with
`--lexicon FILE` (a YAML mapping word -> valence) the overrides' effect is reported apart.

    python bench/bench_sentiment.py
    python bench/bench_sentiment.py --lexicon bench/police-lexicon.yaml
"""

from __future__ import annotations

import math
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Callable, Sequence

import benchlib
from pydantic import Field, RootModel
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from listener.errors import ConfigError
from listener.sentiment import SentimentScorer
from listener.yamlfile import load_file

NAME = "sentiment"
DEFAULT_DATA = benchlib.ROOT.parent / "shared" / "data" / "vader"
CORPORA = {
    "tweets": "tweets_GroundTruth.txt",
    "movie": "movieReviewSnippets_GroundTruth.txt",
    "amazon": "amazonReviewSnippets_GroundTruth.txt",
    "nyt": "nytEditorialSnippets_GroundTruth.txt",
}
# vaderSentiment 3.3.2 on these files, measured for /work/shared/reference/measured-anchors.md §1.
ANCHORS = {
    "tweets": {"r": 0.872, "accuracy": 0.921, "macro_f1": 0.640, "macro_f1_pos_neg": 0.945, "weighted_f1": 0.949},
    "movie": {"r": 0.43, "weighted_f1": 0.59},
    "amazon": {"r": 0.59, "weighted_f1": 0.64},
    "nyt": {"r": 0.50, "weighted_f1": 0.57},
}
POS, NEU, NEG = "positive", "neutral", "negative"


class Lexicon(RootModel[dict[str, Annotated[float, Field(ge=-4, le=4)]]]):
    """A domain lexicon file: word -> valence on VADER's -4..4 scale."""


@dataclass(frozen=True)
class Item:
    id: str
    mean: float
    text: str


def read_corpus(path: Path) -> list[Item]:
    """One ground-truth file. Lines end in CRLF and texts may hold other odd characters, so split on LF only."""
    items = []
    raw = path.read_text(encoding="utf-8-sig")
    for number, line in enumerate(raw.split("\n"), start=1):
        line = line.rstrip("\r")
        if not line.strip():
            continue
        parts = line.split("\t", 2)
        if len(parts) != 3:
            raise SystemExit(f"{path}:{number}: expected id<TAB>mean<TAB>text")
        items.append(Item(parts[0], float(parts[1]), parts[2]))
    return items


def predicted(compound: float) -> str:
    return POS if compound >= 0.05 else NEG if compound <= -0.05 else NEU


def gold(mean: float) -> str:
    return POS if mean > 0 else NEG if mean < 0 else NEU


def _ranks(values: Sequence[float]) -> list[float]:
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1  # ties share their mean rank
        i = j + 1
    return ranks


def _prf(truth: Sequence[str], guess: Sequence[str], label: str) -> tuple[float, float, float, int]:
    tp = sum(1 for t, g in zip(truth, guess) if t == label and g == label)
    fp = sum(1 for t, g in zip(truth, guess) if t != label and g == label)
    fn = sum(1 for t, g in zip(truth, guess) if t == label and g != label)
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return p, r, f, tp + fn


def evaluate(items: Sequence[Item], compounds: Sequence[float]) -> dict[str, Any]:
    means = [it.mean for it in items]
    truth = [gold(m) for m in means]
    guess = [predicted(c) for c in compounds]
    per = {label: _prf(truth, guess, label) for label in (POS, NEU, NEG)}
    support = per[POS][3] + per[NEG][3]
    weighted = [sum(per[label][i] * per[label][3] for label in (POS, NEG)) / support for i in range(3)]
    return {
        "n": len(items),
        "r": statistics.correlation(compounds, means),
        "spearman": statistics.correlation(_ranks(compounds), _ranks(means)),
        "accuracy": sum(t == g for t, g in zip(truth, guess)) / len(items),
        "macro_f1": statistics.fmean(per[label][2] for label in (POS, NEU, NEG)),
        "macro_f1_pos_neg": statistics.fmean(per[label][2] for label in (POS, NEG)),
        "weighted_precision": weighted[0], "weighted_recall": weighted[1], "weighted_f1": weighted[2],
        "gold": {label: per[label][3] for label in (POS, NEU, NEG)},
        "predicted": {label: guess.count(label) for label in (POS, NEU, NEG)},
    }


def load_lexicon(path: Path) -> dict[str, float]:
    lexicon, _ = load_file(Lexicon, path)
    return dict(lexicon.root)


def _rounded(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in metrics.items()}


def main(argv: Sequence[str] | None = None) -> int:
    p = benchlib.parser(NAME, __doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=DEFAULT_DATA,
                   help=f"folder with VADER's *_GroundTruth.txt files (default {DEFAULT_DATA})")
    p.add_argument("--lexicon", type=Path, help="also score with these overrides (YAML mapping word -> valence)")
    p.add_argument("--corpora", nargs="+", choices=list(CORPORA), default=list(CORPORA),
                   help="which corpora (default: all four)")
    args = p.parse_args(argv)
    if not (args.data / CORPORA["tweets"]).is_file():
        print(f"bench_sentiment: skipped: VADER's ground-truth files are not in {args.data} "
              "(give their folder with --data)")
        return 0
    lexicon: dict[str, float] = {}
    if args.lexicon:
        try:
            lexicon = load_lexicon(args.lexicon)
        except ConfigError as exc:
            for problem in exc.problems:
                print(problem, file=sys.stderr)
            return 2

    vader = SentimentIntensityAnalyzer()
    scorers: dict[str, Callable[[str], float]] = {
        "vaderSentiment": lambda text: vader.polarity_scores(text)["compound"],
        "listener": (lambda s: lambda text: s.score(text).compound)(SentimentScorer()),
    }
    if lexicon:
        scorers["listener+lexicon"] = (lambda s: lambda text: s.score(text).compound)(SentimentScorer(lexicon))

    results: dict[str, Any] = {}
    rows = []
    agree_all = True
    for corpus in args.corpora:
        items = read_corpus(args.data / CORPORA[corpus])
        scores = {name: [score(it.text) for it in items] for name, score in scorers.items()}
        differing = sum(1 for a, b in zip(scores["vaderSentiment"], scores["listener"]) if a != b)
        agree_all &= differing == 0
        entry: dict[str, Any] = {"n": len(items), "listener_differs_from_vader": differing, "scorers": {}}
        for name, compounds in scores.items():
            m = evaluate(items, compounds)
            entry["scorers"][name] = _rounded(m)
            rows.append([corpus, name, m["n"], m["r"], m["spearman"], m["accuracy"], m["macro_f1"],
                         m["macro_f1_pos_neg"], m["weighted_precision"], m["weighted_recall"], m["weighted_f1"]])
        if lexicon:
            base = [predicted(c) for c in scores["listener"]]
            other = [predicted(c) for c in scores["listener+lexicon"]]
            truth = [gold(it.mean) for it in items]
            entry["lexicon_effect"] = {
                "scores_changed": sum(1 for a, b in zip(scores["listener"], scores["listener+lexicon"]) if a != b),
                "labels_changed": sum(1 for a, b in zip(base, other) if a != b),
                "now_right": sum(1 for t, a, b in zip(truth, base, other) if a != t and b == t),
                "now_wrong": sum(1 for t, a, b in zip(truth, base, other) if a == t and b != t),
            }
        anchor = ANCHORS[corpus]
        listener = entry["scorers"]["listener"]
        entry["anchors"] = anchor
        entry["matches_anchors"] = all(
            math.isclose(round(listener[k], len(str(v).split(".")[1])), v) for k, v in anchor.items())
        results[corpus] = entry

    print("Sentiment accuracy on VADER's human-rated corpora (compound >= 0.05 positive, <= -0.05 negative; "
          "gold: mean > 0 / < 0 / = 0)\n")
    print(benchlib.table(
        ["corpus", "scorer", "n", "r", "spearman", "acc (3)", "macro-F1 (3)", "macro-F1 (pos,neg)",
         "P (w)", "R (w)", "F1 (w)"], rows))
    print()
    for corpus, entry in results.items():
        line = (f"{corpus}: listener differs from vaderSentiment on {entry['listener_differs_from_vader']} texts; "
                f"matches the measured anchors {entry['anchors']}: {benchlib.verdict(entry['matches_anchors'])}")
        print(line)
        if "lexicon_effect" in entry:
            e = entry["lexicon_effect"]
            print(f"  lexicon {args.lexicon}: {e['scores_changed']} scores changed, {e['labels_changed']} labels "
                  f"changed ({e['now_right']} now right, {e['now_wrong']} now wrong)")
    path = benchlib.write_result(NAME, args.out, {
        "data": str(args.data), "lexicon": str(args.lexicon) if args.lexicon else None, "lexicon_words": lexicon,
        "rule": {"positive": "compound >= 0.05", "negative": "compound <= -0.05",
                 "gold": "mean > 0 positive, < 0 negative, = 0 neutral"},
        "listener_equals_vader": agree_all, "corpora": results,
    })
    print(f"\nwritten: {path}")
    return 0 if agree_all else 1


if __name__ == "__main__":
    sys.exit(main())
