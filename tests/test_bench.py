"""The benchmark scripts run end to end on tiny sizes, so they cannot rot (their figures are not checked here)."""

from __future__ import annotations

import importlib
import itertools
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from listener import native
from listener.mention import Mention

from conftest import ROOT, SHARED

BENCH = ROOT / "bench"
VADER_DATA = SHARED / "data" / "vader"


def bench(name: str) -> ModuleType:
    """A script of bench/ imported as a module (they import their neighbours by plain name)."""
    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))
    return importlib.import_module(name)


def result(out: Path, name: str) -> dict[str, Any]:
    data = json.loads((out / f"{name}.json").read_text(encoding="utf-8"))
    assert data["benchmark"] == name and data["machine"]["python"]
    return data


# -- the stream generator ---------------------------------------------------------------


def test_streams_are_reproducible_by_seed_and_valid_mentions():
    streams = bench("streams")
    first = list(streams.json_lines(streams.StreamSpec(n=3000, seed=11)))
    assert first == list(streams.json_lines(streams.StreamSpec(n=3000, seed=11)))
    assert first != list(streams.json_lines(streams.StreamSpec(n=3000, seed=12)))
    parsed = [Mention.from_json(line) for line in first]  # every line is a contract mention
    stats = streams.stats(m.to_dict() for m in parsed)
    assert stats["mentions"] == 3000
    assert 0.9 * 3000 < stats["unique"] < 3000  # some re-deliveries, as overlapping polls give
    assert 60 < stats["mean_chars"] < 140  # tweet-like lengths
    for key in ("replies", "with_emoji", "with_hashtag", "with_handle"):
        assert stats[key] > 300, key
    assert {m.platform for m in parsed} == {"x", "bluesky", "instagram", "mastodon"}
    assert {m.watch_kind for m in parsed} == {"account", "hashtag", "query", "post"}


def test_streams_are_lazy():
    streams = bench("streams")
    # A stream far too large to hold still yields its first mentions at once.
    head = list(itertools.islice(streams.mentions(streams.StreamSpec(n=10**12)), 5))
    assert len(head) == 5


def test_streams_carry_backlash_waves_that_the_shipped_rule_catches(tmp_path):
    streams = bench("streams")
    path = tmp_path / "day.jsonl"
    # About six hours at the default rate, with a wave every hour or so.
    streams.write_jsonl(path, streams.StreamSpec(n=10_000, seed=5, wave_every_s=3600))
    from listener.backtest import run_backtest
    from listener.rules import load_rules

    result_, store = run_backtest(path, load_rules([ROOT / "rules"]).rules, tmp_path / "b.db")
    store.close()
    assert result_.per_rule["backlash-on-post"].episodes >= 3


# -- each benchmark, tiny -----------------------------------------------------------------


def test_bench_pipeline_runs(tmp_path):
    assert bench("bench_pipeline").main(["--n", "600", "--batch", "100", "--profile", "300", "--out",
                                         str(tmp_path)]) == 0
    data = result(tmp_path, "pipeline")
    assert data["received"] == 600 and 0 < data["new"] < 600 and data["stored"] == data["new"]
    assert data["pipeline_per_s"] > 0 and data["vader_per_s"] > 0 and data["ratio"] > 0
    assert {s["stage"] for s in data["profile"]["stages"]} >= {"VADER scoring", "rules (engine)"}


def test_bench_latency_runs(tmp_path):
    if bench("benchlib").mosquitto_binary() is None:
        pytest.skip("mosquitto is not installed (./dev test installs it)")
    code = bench("bench_latency").main(["--runs", "2", "--interval", "1", "--noise", "5", "--firehose", "20",
                                        "--gap", "0.5", "--out", str(tmp_path)])
    data = result(tmp_path, "latency")
    assert code == 0
    variants = data["variants"]
    assert set(variants) == {"daemon", "jetstream", "inprocess"}
    for name, v in variants.items():
        assert v["missed"] == 0 and v["early"] == 0 and len(v["samples"]) == 2, name
        assert all(0 < s["latency_s"] < 10 for s in v["samples"]), name
    assert all("wait_s" in s and "process_s" in s for s in variants["inprocess"]["samples"])
    # Through the real daemon: the poll seen at the fake, the alert found in the daemon's outbox.
    assert all({"wait_s", "process_s", "deliver_s"} <= set(s) for s in variants["daemon"]["samples"])
    assert all("detect_s" in s for s in variants["jetstream"]["samples"])
    for name in ("daemon", "jetstream"):
        assert variants[name]["exit_code"] == 0, f"{name}: listener run did not stop cleanly on SIGTERM"
        assert 10 < variants[name]["rss_mb"]["max"] < 2000


def test_bench_memory_runs(tmp_path):
    assert bench("bench_memory").main(["--n", "1000", "--batch", "100", "--out", str(tmp_path)]) == 0
    data = result(tmp_path, "memory")
    assert data["rules"] == 20
    assert [s["percent"] for s in data["samples"]][-1] == 100
    assert 10 < data["checkpoints"]["100"]["rss_mb"] < 2000


def test_bench_backtest_runs(tmp_path):
    assert bench("bench_backtest").main(["--n", "500", "--out", str(tmp_path)]) == 0
    data = result(tmp_path, "backtest")
    assert data["lines"] == 500 and data["per_s"] > 0
    assert "500 mentions read" in data["replay_summary"]


def test_bench_sentiment_reproduces_vader_exactly(tmp_path):
    if not (VADER_DATA / "tweets_GroundTruth.txt").is_file():
        pytest.skip(f"VADER's ground-truth data is not in {VADER_DATA} (set LISTENER_SHARED)")
    code = bench("bench_sentiment").main(["--data", str(VADER_DATA), "--corpora", "tweets", "--lexicon",
                                          str(BENCH / "police-lexicon.yaml"), "--out", str(tmp_path)])
    data = result(tmp_path, "sentiment")
    assert code == 0 and data["listener_equals_vader"]
    tweets = data["corpora"]["tweets"]
    assert tweets["listener_differs_from_vader"] == 0
    listener = tweets["scorers"]["listener"]
    assert (round(listener["r"], 3), round(listener["accuracy"], 3)) == (0.872, 0.921)
    assert tweets["matches_anchors"]
    assert "listener+lexicon" in tweets["scorers"] and "labels_changed" in tweets["lexicon_effect"]


def test_bench_sentiment_skips_without_data(tmp_path, capsys):
    assert bench("bench_sentiment").main(["--data", str(tmp_path / "absent"), "--out", str(tmp_path)]) == 0
    assert "skipped" in capsys.readouterr().out
    assert not (tmp_path / "sentiment.json").exists()


def test_bench_sentiment_reports_a_bad_lexicon_with_its_position(tmp_path, capsys):
    if not (VADER_DATA / "tweets_GroundTruth.txt").is_file():
        pytest.skip(f"VADER's ground-truth data is not in {VADER_DATA} (set LISTENER_SHARED)")
    lexicon = tmp_path / "lexicon.yaml"
    lexicon.write_text("cringe: -2\nawful: -9\n", encoding="utf-8")
    assert bench("bench_sentiment").main(["--data", str(VADER_DATA), "--lexicon", str(lexicon),
                                          "--out", str(tmp_path)]) == 2
    assert f"{lexicon}:2:" in capsys.readouterr().err


def test_run_all_lists_every_benchmark(capsys):
    assert bench("run_all").main(["--list"]) == 0
    listed = {line.split()[0] for line in capsys.readouterr().out.splitlines()}
    assert listed >= {"pipeline", "latency", "memory", "backtest", "sentiment"}


def test_engine_benchmark_runs_small_and_counts_calls(tmp_path):
    """Calls are counted on the pure-Python engine (a child process told to run it): the compiled one makes
    none that cProfile sees, and says so rather than reporting a count that means nothing."""
    out = tmp_path / "engine.json"
    env = {**os.environ, native.PURE_ENV: "1"}
    subprocess.run([sys.executable, str(BENCH / "bench_engine.py"), "--mentions", "3000", "--days", "1",
                    "--calls", "500", "--families", "--out", str(out)], env=env, check=True, capture_output=True)
    data = json.loads(out.read_text(encoding="utf-8"))
    assert data["engine_build"].startswith("pure Python")
    assert data["rules"] == 20 and data["mentions"] == 3000
    assert data["engine_mentions_per_s"] > 0 and data["vader_texts_per_s"] > 0
    assert data["calls_per_mention"] > 20  # at least a call per rule per mention
    families = data["families"]
    assert set(families) == {"text", "threshold", "baseline", "flatline"}
    assert sum(row["rules"] for row in families.values()) == 20
    assert all(row["calls_per_mention"] > 0 for row in families.values())
    assert [row["percent"] for row in data["memory"]] == [25, 50, 100]


def test_engine_benchmark_says_which_engine_it_ran(tmp_path, capsys):
    out = tmp_path / "engine.json"
    assert bench("bench_engine").main(["--mentions", "2000", "--days", "1", "--calls", "300", "--out", str(out)]) == 0
    data = json.loads(out.read_text(encoding="utf-8"))
    assert data["engine_build"] == native.status()
    printed = capsys.readouterr().out
    assert native.status() in printed
    if native.status().startswith("compiled"):
        assert data["calls_per_mention"] is None and "not counted" in printed
    else:
        assert data["calls_per_mention"] > 20


def test_rules_benchmark_reports_recall_false_alarms_and_recordings(tmp_path, capsys):
    assert bench("bench_rules").main(["--vader-data", str(tmp_path / "absent"), "--out", str(tmp_path)]) == 0
    data = result(tmp_path, "rules")
    assert set(data["posts"]) == {f"round{i}" for i in range(1, 12)} | {"background", "short"}
    crisis = data["posts"]["round11"]["person-in-crisis"]
    assert crisis["positives"] == 60 and 0 <= crisis["caught"] <= 60
    assert data["posts"]["background"]["crime-tip"]["positives"] == 0
    assert all(s["ok"] for s in data["scenarios"].values()), data["scenarios"]
    assert "VADER's corpora are not at" in capsys.readouterr().out
