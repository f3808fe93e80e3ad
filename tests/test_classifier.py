"""Text classifiers: `listener rules train`, the model file, the `classifier:` filter in rules."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import pytest

from listener.errors import ConfigError
from listener.paths import SHIPPED_RULES
from listener.rules import Engine, load_rules
from listener.rules.classifier import ModelError, grams, load_model
from listener.rules.engine import same_definition
from listener.rules.text import features
from listener.rules.reload import RuleReloader, fingerprint
from listener.rules.training import Examples, _fit, held_out, read_labelled, read_ordinary, train, write_model

from conftest import SHARED, run_cli

# A small invented training set: people asking for a lost pet to be found ("pet") among ordinary posts.
PETS = ["my dog ran off near the park please help find him",
        "@CityShelter lost cat, grey tabby, last seen on elm street",
        "has anyone seen a small brown dog with a red collar", "our puppy slipped her leash by the river",
        "missing parrot, answers to kiwi, please share", "please help us find our lost cat, reward",
        "@CityShelter lost dog near the school, very shy, do not chase",
        "our cat has been missing 2 days, tabby, elm st"]
ORDINARY = ["the bus was late again this morning", "great game last night, what a goal",
            "new coffee place on main street is lovely", "road closed for the parade on saturday",
            "thanks to the crew who cleared the snow", "what time does the library open on sunday",
            "the park looks beautiful in the fall", "my phone battery died during the concert",
            "school starts next week, buying pencils", "the river trail is muddy after the rain",
            "dog show at the fairground was so much fun", "cat videos are the best part of the internet"]


def examples(tmp_path: Path) -> tuple[Path, Path]:
    labelled = tmp_path / "labelled.jsonl"
    labelled.write_text("".join(json.dumps({"text": t, "label": "pet"}) + "\n" for t in PETS)
                        + "".join(json.dumps({"text": t, "label": "none"}) + "\n" for t in ORDINARY[:6]))
    ordinary = tmp_path / "ordinary.txt"
    ordinary.write_text("\n".join(ORDINARY[6:]) + "\n")
    return labelled, ordinary


def trained(tmp_path: Path, **options: float) -> Path:
    labelled, ordinary = examples(tmp_path)
    ex = Examples()
    read_labelled([labelled], ex)
    read_ordinary([ordinary], ex)
    path = tmp_path / "models" / "pets.json"
    path.parent.mkdir(exist_ok=True)
    write_model(train(ex, min_df=1, **options), path)
    return path


def test_a_trained_model_tells_its_label_from_ordinary_posts(tmp_path):
    model = load_model(trained(tmp_path))
    assert model.labels == ["pet"]
    lost = model.score(features("Lost dog!! brown, red collar, last seen by the river. please share"), "pet")
    other = model.score(features("the library opens late on sunday, what a game last night"), "pet")
    assert lost > 0.8 > 0.2 > other


def test_training_finds_the_optimum_of_its_objective(tmp_path):
    """At the weights found, the gradient of c * weighted log-loss + |w|^2 / 2 is (nearly) zero:
    a thousandth of what it is at zero."""
    rng = random.Random(3)
    dim, c = 12, 5.0
    rows = [tuple(sorted({(i, rng.random()) for i in rng.sample(range(dim), 4)})) for _ in range(60)]
    y = [sum(v for i, v in row if i < 4) > sum(v for i, v in row if i >= 8) for row in rows]

    def gradient(w: list[float]) -> list[float]:
        grad = [0.0] * (dim + 1)
        for row, positive in zip(rows, y):
            z = w[dim] + sum(w[i] * v for i, v in row)
            r = 1 / (1 + math.exp(-z)) - (1.0 if positive else 0.0)
            for i, v in row:
                grad[i] += c * r * v
            grad[dim] += c * r
        return [g + (w[i] if i < dim else 0.0) for i, g in enumerate(grad)]

    w = _fit(rows, y, dim, c, balance=(1.0, 1.0))
    assert max(map(abs, gradient(w))) < 1e-3 * max(map(abs, gradient([0.0] * (dim + 1))))


def test_the_same_files_give_the_same_model_byte_for_byte(tmp_path):
    first = trained(tmp_path).read_bytes()
    again = trained(tmp_path).read_bytes()
    assert first == again
    assert json.loads(first)["trained"]["labelled"] == {"pet": 8, "none": 6}


def test_scores_follow_the_formula_of_the_model_file(tmp_path):
    """A text's score is the sigmoid of bias + sum(weight * idf) / sqrt(sum(idf^2)) over known grams."""
    path = trained(tmp_path)
    data = json.loads(path.read_text())
    text = "Lost cat near the river, please share 🐈 @MetroPolice 42"
    feats = features(text)
    known = [data["weights"][g] for g in grams(feats) if g in data["weights"]]
    z = data["bias"][0] + sum(row[0] * row[1] for row in known) / math.sqrt(sum(row[0] ** 2 for row in known))
    assert load_model(path).score(feats, "pet") == pytest.approx(1 / (1 + math.exp(-z)))
    # with a prior, every text carries that much more mass in its norm
    data = json.loads(trained(tmp_path, prior=40.0).read_text())
    assert data["prior"] == 40.0
    known = [data["weights"][g] for g in grams(feats) if g in data["weights"]]
    z = data["bias"][0] + sum(row[0] * row[1] for row in known) / math.sqrt(sum(row[0] ** 2 for row in known) + 40)
    assert load_model(path).score(feats, "pet") == pytest.approx(1 / (1 + math.exp(-z)))


def test_a_prior_makes_a_few_words_weigh_less(tmp_path):
    """The same training set with a prior: a two-word post reads less like the label, a whole post hardly less."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    plain, with_prior = load_model(trained(tmp_path / "a")), load_model(trained(tmp_path / "b", prior=40.0))
    short, long = features("lost cat"), features("lost cat, grey tabby, last seen near elm street, please share")
    short_drop = plain.score(short, "pet") - with_prior.score(short, "pet")
    assert short_drop > 0.05
    assert abs(with_prior.score(long, "pet") - plain.score(long, "pet")) < short_drop
    # handles and numbers are read as one word each, whoever and whatever they are
    assert grams(features("@SgtRivera saw 3 cats")) == grams(features("@someone_else saw 12 cats"))


def test_held_out_texts_are_the_same_every_time_and_about_the_share():
    texts = [f"text number {i}" for i in range(4000)]
    out = [t for t in texts if held_out(t, 0.5)]
    assert out == [t for t in texts if held_out(t, 0.5)]
    assert 1800 < len(out) < 2200
    assert not any(held_out(t, 0.0) for t in texts)


def test_the_training_sets_ordinary_texts_leave_out_the_held_out_share(tmp_path):
    labelled, _ = examples(tmp_path)
    ordinary = tmp_path / "ordinary.txt"
    ordinary.write_text("\n".join(f"ordinary post {i} about nothing" for i in range(400)) + "\n")
    ex = Examples()
    read_labelled([labelled], ex)
    read_ordinary([ordinary], ex)
    model = train(ex, min_df=1, holdout=0.25)
    kept = sum(not held_out(t, 0.25) for t in ex.ordinary)
    assert model["trained"]["ordinary"] == kept < 400
    assert model["trained"]["ordinary_held_out"] == 0.25


def test_reading_training_files_reports_and_skips_bad_lines(tmp_path):
    labelled = tmp_path / "l.jsonl"
    labelled.write_text('{"text": "lost dog", "label": "pet"}\nnot json\n{"text": "no label"}\n\n'
                        '{"text": "lost cat", "label": "pet"}\n{"text": "lost\u2028bird", "label": "pet"}\n')
    vader = tmp_path / "v.txt"
    vader.write_text("id_1\t1.5\tsunny day\ttabs and all\nid_2\t-2\ta bad day\r\njust a line\n")
    ex = Examples()
    read_labelled([labelled], ex)
    read_ordinary([vader], ex)
    assert ex.labelled == [("lost dog", "pet"), ("lost cat", "pet"), ("lost\u2028bird", "pet")]  # (U+2028)
    assert ex.problems == [f"{labelled}:2: not a JSON object with a text and a label; skipped",
                           f"{labelled}:3: not a JSON object with a text and a label; skipped"]
    assert ex.ordinary == ["sunny day\ttabs and all", "a bad day", "just a line"]


def test_rules_train_on_the_command_line(tmp_path):
    labelled, ordinary = examples(tmp_path)
    out = tmp_path / "pets.json"
    result = run_cli("rules", "train", str(labelled), "--ordinary", str(ordinary), "--out", str(out), "--min-df", "1")
    assert result.returncode == 0, result.stderr
    assert "training 'pet': 8 posts against 12" in result.stderr  # what it is doing, as it goes
    assert "pet (8 posts)" in result.stderr and "6 posts labelled none" in result.stderr
    assert load_model(out).labels == ["pet"]
    # a file of one class only cannot make a model: said plainly, nothing written
    only_none = tmp_path / "none.jsonl"
    only_none.write_text(json.dumps({"text": "hello", "label": "none"}) + "\n")
    result = run_cli("rules", "train", str(only_none), "--out", str(tmp_path / "x.json"))
    assert result.returncode != 0 and "no labelled posts" in result.stderr
    assert not (tmp_path / "x.json").exists()


@pytest.mark.parametrize("content, message", [
    (None, "cannot read the model"),
    ("{not json", "cannot read the model"),
    (json.dumps({"format": "something else"}), "is not a social-listener text classifier"),
    (json.dumps({"format": "social-listener text classifier", "version": 9}), "this listener reads version 1"),
    (json.dumps({"format": "social-listener text classifier", "version": 1, "labels": ["a"], "bias": [0.0],
                 "weights": {"word": [1.0]}}), "the weights of 'word' are not an idf and one weight per label"),
])
def test_a_model_file_that_cannot_be_used_is_refused_plainly(tmp_path, content, message):
    path = tmp_path / "m.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ModelError, match=message):
        load_model(path)


RULE = """\
rules:
  - id: lost-pet
    kind: match
    match:
      any_of:
        - classifier: {{model: {model}, label: {label}, min_score: 0.7}}
        - any: [lost hamster]
"""


def test_a_rule_reads_its_model_relative_to_its_file_and_fires_with_its_reasons(tmp_path, make_mention):
    trained(tmp_path)
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "pets.yaml").write_text(RULE.format(model="../models/pets.json", label="pet"))
    engine = Engine(load_rules([rules]).rules)
    text = "@CityShelter lost 2 days, tabby"
    model = load_model(tmp_path / "models" / "pets.json")  # its handles and numbers are among its top words...
    assert {"@", "@ lost"} & {c.gram for c in model.contributions(features(text), "pet")[:3]}
    alerts = engine.process([
        make_mention(text, at_s=0, author="a"),
        make_mention("the library is open late on sunday", at_s=60, author="b"),
    ])
    (alert,) = [a for a in alerts if a.status == "firing"]
    (sample,) = alert.samples
    assert sample.author == "a"
    *words, score = alert.sample_matches[0]
    assert score.startswith("pet 0.") and float(score.split()[1]) >= 0.7
    assert words and all(w.casefold() in sample.text.casefold() for w in words)
    assert not any(set(w.split()) & {"@", "#", "0"} for w in words)  # ...but say nothing to a reader


def test_rules_check_explains_the_classifier(tmp_path):
    trained(tmp_path)
    path = tmp_path / "pets.yaml"
    path.write_text(RULE.format(model="models/pets.json", label="pet"))
    result = run_cli("rules", "check", "--explain", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert ("reading like 'pet' to the classifier models/pets.json (score at least 0.7; trained on 8 such posts "
            "against 6 others and 6 ordinary texts)") in result.stdout


def test_a_missing_model_or_unknown_label_is_located_in_the_rule_file(tmp_path):
    trained(tmp_path)
    path = tmp_path / "pets.yaml"
    path.write_text(RULE.format(model="models/nope.json", label="pet"))
    with pytest.raises(ConfigError) as info:
        load_rules([path])
    (problem,) = info.value.problems
    assert str(problem).startswith(f"{path}:6:31: rule 'lost-pet': classifier model: cannot read the model ")
    path.write_text(RULE.format(model="models/pets.json", label="pets"))
    with pytest.raises(ConfigError) as info:
        load_rules([path])
    (problem,) = info.value.problems
    assert str(problem) == (f"{path}:6:56: rule 'lost-pet': classifier label 'pets' is not one of the model's "
                            "labels, did you mean 'pet'?")


def test_a_retrained_model_is_a_changed_rule_on_reload(tmp_path, make_mention):
    model_path = trained(tmp_path)
    (tmp_path / "pets.yaml").write_text(RULE.format(model="models/pets.json", label="pet"))
    engine = Engine(load_rules([tmp_path]).rules)
    before = fingerprint([tmp_path])
    (old,) = engine.rules
    trained(tmp_path, c=0.01)  # a much weaker model: nothing reaches 0.7
    assert fingerprint([tmp_path]) != before  # the watcher sees the model change
    result = RuleReloader(engine, [tmp_path]).reload(0.0)
    assert result.ok and result.changed == ["lost-pet"]
    assert not same_definition(old, engine.rules[0])
    alerts = engine.process([make_mention("has anyone seen our grey tabby? lost near elm street", at_s=0)])
    assert alerts == []
    assert load_model(model_path).score(features("lost cat near elm street"), "pet") < 0.7


def test_a_model_broken_while_running_keeps_the_last_good_rules(tmp_path, make_mention):
    """A half-written or corrupt model is a failed reload: located in the rule file, an operator alert,
    and the rule keeps deciding with the model it had."""
    model_path = trained(tmp_path)
    (tmp_path / "pets.yaml").write_text(RULE.format(model="models/pets.json", label="pet"))
    engine = Engine(load_rules([tmp_path]).rules)
    model_path.write_text('{"format": "social-listener text classifier", "version": 1, "labels": [')
    result = RuleReloader(engine, [tmp_path]).reload(0.0)
    assert not result.ok and [a.rule for a in result.alerts] == ["listener-rules-invalid"]
    (problem,) = result.problems
    assert str(problem).startswith(f"{tmp_path / 'pets.yaml'}:6:31: rule 'lost-pet': classifier model: cannot read")
    alerts = engine.process([make_mention("@CityShelter lost 2 days, tabby", at_s=0)])
    assert [a.rule for a in alerts if a.status == "firing"] == ["lost-pet"]


# --- the shipped model -----------------------------------------------------------------------------------

EVAL = SHIPPED_RULES / "eval" / "posts"
VADER = SHARED / "data" / "vader"


def test_the_shipped_model_is_what_its_documented_command_makes(tmp_path):
    """rules/models/README.md gives the command that made rules/models/posts.json; it makes it again."""
    if not VADER.is_dir():
        pytest.skip(f"VADER's rated corpora are not at {VADER} (set LISTENER_SHARED): the model's ordinary texts")
    readme = (SHIPPED_RULES / "models" / "README.md").read_text()
    command = readme.split("<!-- train -->")[1].split("```sh")[1].split("```")[0]
    args = command.replace("\\\n", " ").split()
    assert args[:3] == ["listener", "rules", "train"]
    out = tmp_path / "posts.json"
    args = [a.replace("../shared", str(SHARED)) for a in args[3:]]
    args[args.index("--out") + 1] = str(out)
    result = run_cli("rules", "train", *args, timeout=300)
    assert result.returncode == 0, result.stderr
    assert out.read_bytes() == (SHIPPED_RULES / "models" / "posts.json").read_bytes()


def test_the_shipped_model_reads_like_its_labels():
    model = load_model(SHIPPED_RULES / "models" / "posts.json")
    assert model.labels == ["crisis", "threat", "tip"]
    assert model.trained["ordinary_held_out"] > 0  # so that false alarms are measured on unseen texts
    assert model.score(features("i wrote letters to everyone and gave my dog away. i won't need my things"),
                       "crisis") > 0.8
    assert model.score(features("what time does the front desk open on sunday?"), "crisis") < 0.5


def test_the_shipped_model_scores_every_labelled_post_by_the_formula_of_its_file():
    """Scoring (which looks word pairs up without making their strings) gives what the model file's
    formula gives over `grams()`, on every post of rules/eval, and explains with the same grams."""
    data = json.loads((SHIPPED_RULES / "models" / "posts.json").read_text())
    weights, prior = data["weights"], data["prior"]
    model = load_model(SHIPPED_RULES / "models" / "posts.json")
    texts = [json.loads(line)["text"] for path in sorted(EVAL.glob("*.jsonl"))
             for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    assert len(texts) > 2000
    for text in texts + ["", "#MetroCares #metrocares 42 ²", "@a @b @a the the the"]:
        feats = features(text)
        assert feats.sequence == feats.stream.split()
        known = [(g, weights[g]) for g in grams(feats) if g in weights]
        norm = math.sqrt(sum(row[0] ** 2 for _, row in known) + prior)
        for i, label in enumerate(model.labels):
            z = data["bias"][i] + sum(row[0] * row[i + 1] for _, row in known) / norm
            assert model.score(feats, label) == pytest.approx(1 / (1 + math.exp(-z)), rel=1e-9, abs=1e-12), text
        assert sorted(c.gram for c in model.contributions(feats, "crisis")) == sorted(g for g, _ in known)


@pytest.mark.parametrize("width", [1, 3, 4, 5, 7])
def test_models_of_any_number_of_labels_score_by_the_formula(width):
    """Up to four labels are added up in locals, more in a list: the formula either way."""
    from listener.rules.classifier import model_from_json

    rng = random.Random(width)
    texts = [json.loads(line)["text"] for line in (EVAL / "round1.jsonl").read_text(encoding="utf-8").splitlines()
             if line.strip()][:300]
    vocab = sorted({g for t in texts for g in grams(features(t))})
    weights = {g: [round(rng.uniform(0.5, 6), 4), *(round(rng.gauss(0, 1), 4) for _ in range(width))]
               for g in vocab if rng.random() < 0.7}
    data = {"format": "social-listener text classifier", "version": 1, "labels": [f"l{i}" for i in range(width)],
            "bias": [rng.gauss(-2, 1) for _ in range(width)], "prior": 3.0, "weights": weights}
    model = model_from_json(json.loads(json.dumps(data)))
    for text in texts + ["", "nothing known here zzz"]:
        feats = features(text)
        known = [weights[g] for g in grams(feats) if g in weights]
        norm = math.sqrt(sum(row[0] ** 2 for row in known) + 3.0)
        expected = [1 / (1 + math.exp(-(data["bias"][i] + sum(row[0] * row[i + 1] for row in known) / norm)))
                    for i in range(width)]
        assert model.scores(feats) == pytest.approx(expected, rel=1e-9, abs=1e-12), text
