"""Text classifiers for rule filters: a linear model over a post's words and word pairs.

Keyword rules catch the phrasings their authors thought of; people in crisis, people making
threats and people offering a tip find many more. A classifier trained on labelled posts
(`listener rules train`, see `training.py`) scores how much a text reads like each of its labels,
from every word and word pair it has seen, so that a rule can add "or reads like a crisis post"
to its phrase lists (`classifier:` in a match block).

The model is a one-against-the-rest logistic regression per label over TF-IDF features, stored
as JSON (no pickles, nothing executed): per word or word pair its idf and its weight for each
label, and a bias per label. A text's score for a label is

    1 / (1 + exp(-(bias + sum(weight * idf) / sqrt(sum(idf ** 2) + prior))))

over the words and word pairs of the text that the model knows (each counted once). The `prior`
(0 unless trained with one) is a mass every text carries: a short text's few words weigh less
("sushi tonight? I'm buying" is not a crisis post for its "tonight" and "I'm"). Words are
those of `features()`, so case, apostrophes and hashtags are read as the term filters read them;
every @handle is the same word "@", every hashtag "#" and every number "0", so that a model
trained on one service's handles, campaigns and street numbers applies to another's.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from listener.rules.text import TextFeatures

FORMAT = "social-listener text classifier"
VERSION = 1


def grams(feats: TextFeatures) -> list[str]:
    """The words and adjacent word pairs of a text, each once, in the order they occur: every
    @handle the word "@", every hashtag "#" and every number "0"."""
    words = placeholders(feats)
    return list(dict.fromkeys(words + list(map(" ".join, zip(words, words[1:])))))


def placeholders(feats: TextFeatures) -> list[str]:
    """The words of a text in order, every @handle the word "@", every hashtag "#" and every number "0"."""
    words = feats.sequence
    if feats.hashtags:
        tags = frozenset(feats.hashtags)
        words = ["#" if w in tags else w for w in words]
    if "@" in feats.stream or _DIGIT.search(feats.stream):
        words = ["@" if w[0] == "@" else "0" if w.isdigit() else w for w in words]
    return words


_DIGIT = re.compile(r"\d")
PADDED = 4  # labels a model may have for the faster scoring (TextModel._add_padded)


@dataclass(frozen=True)
class Contribution:
    gram: str
    weight: float  # what it added to the label's log-odds


class TextModel:
    """A trained model, read from its JSON file; scores texts for each of its labels. (It empties
    `weights` as it reads them.)"""

    def __init__(self, labels: list[str], bias: list[float], weights: dict[str, list[float]],
                 trained: dict[str, Any] | None = None, path: Path | None = None, prior: float = 0.0) -> None:
        self.labels = list(labels)
        self.prior = prior
        self.bias = list(bias)
        self.trained = trained or {}
        self.path = path
        self.stamp: tuple[int, int] | None = None  # the file's modification time and size, when read from one
        # What scoring adds up, per word and per word pair: (idf squared, weight * idf for each label).
        # By word: its own row, if it has one, and the rows of the pairs it begins, by their second
        # word; so that scoring a text looks each of its words up once and makes no string of its pairs.
        # Rows are built as `weights` is emptied, so that reading a model of tens of thousands of
        # grams holds one copy of it.
        index: dict[str, tuple[tuple[float, ...] | None, dict[str, tuple[float, ...]] | None]] = {}
        # Rows of a model of up to four labels are padded to four (with zeros, which add nothing), so that
        # scoring adds them up in four local numbers rather than in a list of numbers (see `_add_padded`).
        width = len(self.labels)
        self._padded = width <= PADDED
        pad = [0.0] * (PADDED - width) if self._padded else []
        while weights:
            gram, row = weights.popitem()
            scaled = (row[0] * row[0], *[w * row[0] for w in row[1:]], *pad)
            first, _, second = gram.partition(" ")
            own, pairs = index.get(first, (None, None))
            if second:
                if pairs is None:
                    pairs = {}
                pairs[second] = scaled
            else:
                own = scaled
            index[first] = (own, pairs)
        self._index = index
        self._last: tuple[TextFeatures, list[float]] | None = None

    def label_index(self, label: str) -> int:
        return self.labels.index(label)

    def scores(self, feats: TextFeatures) -> list[float]:
        """Every label's score (0..1) for a text, in the order of `labels`.

        Several rules ask about the same mention one after another (crisis, threats, tips): the
        last text's scores are kept, by the identity of its features.
        """
        last = self._last
        if last is not None and last[0] is feats:
            return last[1]
        rows = self._rows(placeholders(feats))
        width = len(self.labels)
        result = self._add_padded(rows, width) if self._padded else self._add(rows, width)
        self._last = (feats, result)
        return result

    def _rows(self, words: list[str], names: list[str] | None = None) -> list[tuple[float, ...]]:
        """The rows of the grams of a text that the model knows, in the order of `grams()`: its words,
        then its word pairs, each once (a repeated word is looked up again, and a repeated pair finds
        the same row again), so that scores are added up in one order however they are computed.
        `names`: filled with each row's word or word pair, when given (to explain a score)."""
        rows: list[tuple[float, ...]] = []
        pair_rows: list[tuple[float, ...]] = []
        pair_names: list[str] = []
        seen: set[str] = set()
        index = self._index
        after: dict[str, tuple[float, ...]] | None = None  # the pairs the previous word begins
        previous = ""
        for word in words:
            if after is not None:
                row = after.get(word)
                if row is not None and not any(row is other for other in pair_rows):
                    pair_rows.append(row)
                    if names is not None:
                        pair_names.append(previous + " " + word)
            previous = word
            entry = index.get(word)
            if entry is None:
                after = None
                continue
            own, after = entry
            if own is not None and word not in seen:
                seen.add(word)
                rows.append(own)
                if names is not None:
                    names.append(word)
        rows.extend(pair_rows)
        if names is not None:
            names.extend(pair_names)
        return rows

    def _add(self, rows: list[tuple[float, ...]], width: int) -> list[float]:
        squares = 0.0
        sums = [0.0] * width
        for row in rows:
            squares += row[0]
            for i in range(width):
                sums[i] += row[i + 1]
        norm = math.sqrt(squares + self.prior) if rows else 1.0
        return [sigmoid(self.bias[i] + sums[i] / norm) for i in range(width)]

    def _add_padded(self, rows: list[tuple[float, ...]], width: int) -> list[float]:
        """`_add` for a model of at most four labels: the same sums, in the same order, in four locals
        (compiled, no float object is made per row)."""
        squares = s1 = s2 = s3 = s4 = 0.0
        for row in rows:
            squares += row[0]
            s1 += row[1]
            s2 += row[2]
            s3 += row[3]
            s4 += row[4]
        norm = math.sqrt(squares + self.prior) if rows else 1.0
        sums = (s1, s2, s3, s4)
        return [sigmoid(self.bias[i] + sums[i] / norm) for i in range(width)]

    def _known(self, feats: TextFeatures) -> list[tuple[str, tuple[float, ...]]]:
        """The grams of the text that the model knows, with their rows, in the order of `grams()`."""
        names: list[str] = []
        rows = self._rows(placeholders(feats), names)
        return list(zip(names, rows))

    def score(self, feats: TextFeatures, label: str) -> float:
        return self.scores(feats)[self.label_index(label)]

    def contributions(self, feats: TextFeatures, label: str) -> list[Contribution]:
        """What each known word or word pair of the text added to the label's log-odds, largest first."""
        i = self.label_index(label) + 1
        found = self._known(feats)
        if not found:
            return []
        norm = math.sqrt(sum(row[0] for _, row in found) + self.prior)
        return sorted((Contribution(gram, row[i] / norm) for gram, row in found), key=lambda c: -c.weight)


class ModelError(ValueError):
    """A model file that cannot be used (missing, not JSON, not a model, another version)."""


_loaded: dict[Path, tuple[tuple[int, int], TextModel]] = {}


def load_model(path: str | Path) -> TextModel:
    """The model in a file, read once per version of the file (rules reloaded share it)."""
    path = Path(path).resolve()
    try:
        stat = path.stat()
    except OSError as exc:
        raise ModelError(f"cannot read the model {path}: {exc.strerror}") from None
    stamp = (stat.st_mtime_ns, stat.st_size)
    known = _loaded.get(path)
    if known is not None and known[0] == stamp:
        return known[1]
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"cannot read the model {path}: {exc}") from None
    model = model_from_json(data, path)
    model.stamp = stamp
    _loaded[path] = (stamp, model)
    return model


def model_from_json(data: Any, path: Path | None = None) -> TextModel:
    where = str(path) if path is not None else "the model"
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ModelError(f"{where} is not a {FORMAT} (made by `listener rules train`)")
    if data.get("version") != VERSION:
        raise ModelError(f"{where} is version {data.get('version')!r}; this listener reads version {VERSION}")
    labels, bias, weights = data.get("labels"), data.get("bias"), data.get("weights")
    if not (isinstance(labels, list) and labels and all(isinstance(x, str) for x in labels)
            and isinstance(bias, list) and len(bias) == len(labels) and isinstance(weights, dict)):
        raise ModelError(f"{where}: labels, bias and weights are missing or do not agree")
    width = len(labels) + 1
    for gram, row in weights.items():
        if not (isinstance(row, list) and len(row) == width and all(isinstance(x, (int, float)) for x in row)
                and row[0] > 0):
            raise ModelError(f"{where}: the weights of {gram!r} are not an idf and one weight per label")
    prior = data.get("prior", 0.0)
    if not isinstance(prior, (int, float)) or prior < 0:
        raise ModelError(f"{where}: prior must be a number at least 0")
    return TextModel(labels, [float(b) for b in bias], weights, data.get("trained"), path, float(prior))


def sigmoid(z: float) -> float:
    if z < -30:
        return 0.0
    if z > 30:
        return 1.0
    return 1.0 / (1.0 + math.exp(-z))
