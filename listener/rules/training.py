"""`listener rules train`: a text classifier from labelled posts, for the `classifier:` filter.

Input: labelled posts (JSON Lines, `{"text": ..., "label": ...}`; the label `none` marks a post
of no class, best a hard one: hyperbole, news, worry about someone else) and ordinary texts
(everyday posts about anything, which teach the model what the rest of the world writes). For
each label other than `none` it fits a logistic regression of "this label against everything
else" over the TF-IDF features of `classifier.grams`, with classes weighted to count alike and
an L2 penalty (the objective of scikit-learn's `LogisticRegression(C=c, class_weight="balanced")`),
minimised by L-BFGS in plain Python: a few seconds a label for thousands of posts, with no
numerical library to install. The same files give the same model, byte for byte.

`holdout` keeps a share of the ordinary texts out of training, chosen by a hash of each text, and
records it in the model, so that a benchmark can count false alarms on texts the model never saw
(`held_out`).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

from listener.rules.classifier import FORMAT, VERSION, grams, sigmoid
from listener.rules.text import features

NO_LABEL = "none"


@dataclass
class Examples:
    labelled: list[tuple[str, str]] = field(default_factory=list)  # (text, label)
    ordinary: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # "file:line: what is wrong", each line skipped


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """The numbered lines of a file that are not blank. Split on line feeds only: a JSON string or a
    corpus text may hold other line breaks (U+2028, form feeds) that `splitlines` would cut at."""
    raw = path.read_text(encoding="utf-8-sig", errors="replace")
    for number, line in enumerate(raw.split("\n"), 1):
        line = line.rstrip("\r")
        if line.strip():
            yield number, line


def read_labelled(paths: Iterable[Path], into: Examples) -> None:
    for path in paths:
        for number, line in _lines(path):
            try:
                post = json.loads(line)
                text, label = post["text"], post["label"]
                if not (isinstance(text, str) and isinstance(label, str) and text.strip() and label.strip()):
                    raise ValueError
            except (json.JSONDecodeError, KeyError, TypeError, ValueError):
                into.problems.append(f"{path}:{number}: not a JSON object with a text and a label; skipped")
                continue
            into.labelled.append((text, label.strip()))


def read_ordinary(paths: Iterable[Path], into: Examples) -> None:
    """Ordinary texts: JSON Lines with a `text` (`.jsonl`), or one text per line, where a line of
    three tab-separated columns is VADER's rated corpora's id, rating and text."""
    for path in paths:
        for number, line in _lines(path):
            if path.suffix == ".jsonl":
                try:
                    text = json.loads(line)["text"]
                    if not isinstance(text, str):
                        raise TypeError
                except (json.JSONDecodeError, KeyError, TypeError):
                    into.problems.append(f"{path}:{number}: not a JSON object with a text; skipped")
                    continue
            else:
                parts = line.split("\t", 2)
                text = parts[2] if len(parts) == 3 else line
            if text.strip():
                into.ordinary.append(text)


def held_out(text: str, share: float) -> bool:
    """Whether training with `holdout=share` left this ordinary text out (the same answer every time)."""
    digest = hashlib.sha1(text.encode("utf-8")).digest()
    return int.from_bytes(digest[:4], "big") < share * 2 ** 32


def train(examples: Examples, c: float = 30.0, min_df: int = 2, holdout: float = 0.0,
          sources: Sequence[str] = (), prior: float = 0.0,
          progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """The model (as written to its file) for every label of `examples` but `none`; `progress` is
    told what is being done (training a label takes seconds)."""
    labels = sorted({label for _, label in examples.labelled} - {NO_LABEL})
    if not labels:
        raise ValueError(f"no labelled posts (every post is labelled {NO_LABEL!r} or there are none)")
    ordinary = [t for t in examples.ordinary if not held_out(t, holdout)]
    texts = [t for t, _ in examples.labelled] + ordinary
    docs = [grams(features(t)) for t in texts]
    df: dict[str, int] = {}
    for doc in docs:
        for g in doc:
            df[g] = df.get(g, 0) + 1
    vocab = sorted(g for g, n in df.items() if n >= min_df)
    index = {g: i for i, g in enumerate(vocab)}
    n = len(docs)
    # rounded as stored, so that the model scores as it was trained
    idf = [round(math.log((1 + n) / (1 + df[g])) + 1, 4) for g in vocab]
    rows = [_row(doc, index, idf, prior) for doc in docs]
    bias: list[float] = []
    weights: list[list[float]] = []
    for label in labels:
        y = [lab == label for _, lab in examples.labelled] + [False] * len(ordinary)
        positives = sum(y)
        if positives == 0 or positives == n:
            raise ValueError(f"label {label!r} needs posts both with and without it")
        if progress is not None:
            progress(f"training {label!r}: {positives} posts against {n - positives:,}, "
                     f"{len(vocab):,} words and word pairs")
        w = _fit(rows, y, len(vocab), c, balance=(n / (2 * positives), n / (2 * (n - positives))))
        weights.append([round(x, 4) for x in w[:-1]])
        bias.append(round(w[-1], 4))
    counts = {label: sum(lab == label for _, lab in examples.labelled) for label in labels + [NO_LABEL]}
    trained = {"labelled": counts, "ordinary": len(ordinary), "ordinary_held_out": holdout,
               "c": c, "min_df": min_df, "sources": list(sources)}
    table = {g: [idf[i], *(w[i] for w in weights)] for i, g in enumerate(vocab)}
    model = {"format": FORMAT, "version": VERSION, "labels": labels, "bias": bias, "trained": trained,
             "weights": table}
    if prior:
        model["prior"] = prior
    return model


def write_model(model: dict[str, Any], path: Path) -> None:
    """As JSON, one word or word pair to a line, so that a retrained model's diff shows what changed."""
    head = json.dumps({k: v for k, v in model.items() if k != "weights"}, ensure_ascii=False)
    rows = [f"  {json.dumps(g, ensure_ascii=False)}: {json.dumps(r)}" for g, r in model["weights"].items()]
    path.write_text(head[:-1] + ', "weights": {\n' + ",\n".join(rows) + "\n}}\n", encoding="utf-8")


Row = tuple[tuple[int, float], ...]


def _row(doc: list[str], index: dict[str, int], idf: list[float], prior: float = 0.0) -> Row:
    ids = sorted(index[g] for g in doc if g in index)
    if not ids:
        return ()
    norm = math.sqrt(sum(idf[i] * idf[i] for i in ids) + prior)
    return tuple((i, idf[i] / norm) for i in ids)


def _fit(rows: list[Row], y: list[bool], dim: int, c: float, balance: tuple[float, float]) -> list[float]:
    """Weights (the bias last) minimising c * weighted log-loss + |w|^2 / 2 (the bias not penalised)."""
    pos_weight, neg_weight = balance

    def loss_and_gradient(w: list[float]) -> tuple[float, list[float]]:
        grad = [0.0] * (dim + 1)
        loss = 0.0
        bias = w[dim]
        for row, positive in zip(rows, y):
            z = bias
            for i, v in row:
                z += w[i] * v
            if positive:
                loss += pos_weight * _log1pexp(-z)
                r = pos_weight * (sigmoid(z) - 1.0)
            else:
                loss += neg_weight * _log1pexp(z)
                r = neg_weight * sigmoid(z)
            for i, v in row:
                grad[i] += r * v
            grad[dim] += r
        loss *= c
        for i in range(dim):
            loss += 0.5 * w[i] * w[i]
            grad[i] = c * grad[i] + w[i]
        grad[dim] *= c
        return loss, grad

    return _lbfgs(loss_and_gradient, dim + 1)


def _lbfgs(f: Callable[[list[float]], tuple[float, list[float]]], dim: int, memory: int = 10,
           max_steps: int = 500, tolerance: float = 1e-4) -> list[float]:
    """Minimise a smooth convex f from zero: limited-memory BFGS with a backtracking line search,
    until the gradient is `tolerance` times what it was at zero (or the loss stops changing)."""
    w = [0.0] * dim
    loss, grad = f(w)
    enough = tolerance * max(abs(g) for g in grad)
    steps: list[tuple[list[float], list[float], float]] = []  # (s, y, 1 / y.s)
    for _ in range(max_steps):
        q = grad[:]
        alphas = []
        for s, yv, rho in reversed(steps):
            a = rho * _dot(s, q)
            alphas.append(a)
            q = [qi - a * yi for qi, yi in zip(q, yv)]
        if steps:
            s, yv, _ = steps[-1]
            gamma = _dot(s, yv) / _dot(yv, yv)
        else:
            gamma = 1.0 / max(math.sqrt(_dot(grad, grad)), 1e-12)
        q = [gamma * qi for qi in q]
        for (s, yv, rho), a in zip(steps, reversed(alphas)):
            b = rho * _dot(yv, q)
            q = [qi + si * (a - b) for qi, si in zip(q, s)]
        slope = -_dot(grad, q)
        if slope >= 0:  # not a descent direction (rounding): start over from the gradient
            steps.clear()
            q = [gi / max(math.sqrt(_dot(grad, grad)), 1e-12) for gi in grad]
            slope = -_dot(grad, q)
        t = 1.0
        while True:
            trial = [wi - t * qi for wi, qi in zip(w, q)]
            new_loss, new_grad = f(trial)
            if new_loss <= loss + 1e-4 * t * slope or t < 1e-12:
                break
            t *= 0.5
        s = [a - b for a, b in zip(trial, w)]
        yv = [a - b for a, b in zip(new_grad, grad)]
        sy = _dot(s, yv)
        if sy > 1e-12:
            steps.append((s, yv, 1.0 / sy))
            if len(steps) > memory:
                steps.pop(0)
        done = max(abs(g) for g in new_grad) <= enough or abs(loss - new_loss) <= 1e-12 * max(abs(loss), 1.0)
        w, loss, grad = trial, new_loss, new_grad
        if done:
            break
    return w


def _dot(a: list[float], b: list[float]) -> float:
    return math.fsum(x * y for x, y in zip(a, b))


def _log1pexp(z: float) -> float:
    return z if z > 30 else math.log1p(math.exp(z))
