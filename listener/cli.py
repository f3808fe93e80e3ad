"""The `listener` command: thin wrappers that call the library and turn errors into exit codes."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Callable, Sequence

from listener import __version__, native
from listener.errors import ConfigError, InputError, ListenerError, Problem, PublishError
from listener.paths import DEFAULT_CONFIG, SHIPPED_RULES

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2


def _problem_printer(stream=sys.stderr) -> Callable[[Problem], None]:  # type: ignore[no-untyped-def]
    return lambda problem: print(str(problem), file=stream)


def cmd_replay(args: argparse.Namespace) -> int:
    from listener.backtest import run_backtest
    from listener.config import load_config
    from listener.publish import drain_outbox, parse_broker_url, MqttPublisher
    from listener.render import alert_text
    from listener.rules import load_rules
    from listener.sentiment import SentimentScorer

    lexicon = load_config(args.config).config.sentiment.lexicon if args.config else {}
    ruleset = load_rules(args.rules)
    fmt = args.format

    def show(alert) -> None:  # type: ignore[no-untyped-def]
        payload = alert.to_payload()
        if fmt == "jsonl":
            print(json.dumps(payload, ensure_ascii=False), flush=True)
        else:
            print(alert_text(payload) + "\n", flush=True)

    if not Path(args.file).is_file():
        raise InputError(f"{args.file}: no such file")
    with tempfile.TemporaryDirectory(prefix="listener-replay-") as tmp:
        db = args.db or str(Path(tmp) / "replay.db")
        result, store = run_backtest(args.file, ruleset.rules, db, scorer=SentimentScorer(lexicon),
                                     on_alert=show, on_problem=_problem_printer())
        try:
            if args.broker:
                settings = parse_broker_url(args.broker, prefix=args.prefix, client_id="listener-replay")

                async def publish() -> int:
                    async with MqttPublisher(settings) as pub:
                        return await drain_outbox(store, pub)

                sent = asyncio.run(publish())
                print(f"published {sent} alert messages to {settings.url} under {settings.prefix}/", file=sys.stderr)
        finally:
            store.close()
    for line in result.summary_lines(ruleset.rules):
        print(line, file=sys.stderr)
    return EXIT_OK


def cmd_rules_check(args: argparse.Namespace) -> int:
    from datetime import date

    from listener.rules.check import check_rules, explain

    today = date.fromisoformat(args.today) if args.today else date.today()
    report = check_rules(args.paths, today)
    for problem in report.problems:
        print(str(problem), file=sys.stderr)
    if report.ruleset is not None:
        if args.explain:
            for rule in report.ruleset.rules:
                print(explain(rule) + "\n")
        rules = report.ruleset.rules
        print(f"{len(rules)} rules in {len(report.ruleset.files)} files: {len(report.errors)} errors, "
              f"{len(report.problems) - len(report.errors)} warnings", file=sys.stderr)
    failed = report.errors or (args.strict and report.problems)
    return EXIT_ERROR if failed else EXIT_OK


def cmd_rules_test(args: argparse.Namespace) -> int:
    from listener.rules.testing import RuleTestRunner, find_test_files

    files = find_test_files(args.paths)
    if not files:
        raise InputError(f"no rule test files (*.test.yaml) in {' '.join(args.paths)}")
    runner = RuleTestRunner()
    passed = failed = 0
    for path in files:
        try:
            outcomes = runner.run_file(path)
        except ConfigError as exc:
            for problem in exc.problems:
                print(str(problem), file=sys.stderr)
            failed += 1
            continue
        for outcome in outcomes:
            where = f"{outcome.file}:{outcome.line}" if outcome.line else outcome.file
            if outcome.ok:
                passed += 1
                if args.verbose:
                    print(f"PASS {where} {outcome.name}")
            else:
                failed += 1
                print(f"FAIL {where} {outcome.name}")
                for failure in outcome.failures:
                    print("  " + failure.replace("\n", "\n  "))
    print(f"{passed} passed, {failed} failed", file=sys.stderr)
    return EXIT_ERROR if failed else EXIT_OK


def cmd_rules_train(args: argparse.Namespace) -> int:
    from listener.rules.training import Examples, read_labelled, read_ordinary, train, write_model

    examples = Examples()
    for name in [*args.labelled, *args.ordinary]:
        if not Path(name).is_file():
            raise InputError(f"{name}: no such file")
    read_labelled([Path(p) for p in args.labelled], examples)
    read_ordinary([Path(p) for p in args.ordinary], examples)
    for problem in examples.problems:
        print(problem, file=sys.stderr)
    if not 0 <= args.holdout < 1:
        raise InputError("--holdout must be at least 0 and less than 1")
    if args.prior < 0:
        raise InputError("--prior must be at least 0")
    sources = [Path(p).name for p in [*args.labelled, *args.ordinary]]
    try:
        model = train(examples, c=args.c, min_df=args.min_df, holdout=args.holdout, sources=sources,
                      prior=args.prior, progress=lambda what: print(what, file=sys.stderr, flush=True))
    except ValueError as exc:
        raise InputError(str(exc)) from None
    out = Path(args.out)
    write_model(model, out)
    counts = model["trained"]["labelled"]
    print(f"wrote {out}: labels {', '.join(f'{k} ({counts[k]} posts)' for k in model['labels'])} against "
          f"{counts.get('none', 0)} posts labelled none and {model['trained']['ordinary']} ordinary texts; "
          f"{len(model['weights'])} words and word pairs", file=sys.stderr)
    return EXIT_OK


def cmd_rules_examples(args: argparse.Namespace) -> int:
    from listener.config import LoadedConfig, load_config
    from listener.examples import alert_examples, ordinary_examples
    from listener.rules import load_rules
    from listener.store import Store

    loaded: LoadedConfig | None = None

    def config() -> LoadedConfig:  # read only if --rules or --db leaves something to find there
        nonlocal loaded
        if loaded is None:
            loaded = load_config(args.config)
        return loaded

    labels: dict[str, str] = {}
    for item in args.rule:
        rule, sep, label = item.partition("=")
        if not sep or not rule or not label:
            raise InputError(f"--rule {item!r}: write RULE=LABEL, e.g. person-in-crisis=crisis")
        labels[rule] = label
    if not labels:  # the rules that ask a classifier, with the label they ask it about
        paths = args.rules or config().rule_paths()
        for r in load_rules(paths).rules:
            found = [c.label for c in r.classifiers()]
            if found:
                labels[r.id] = found[0]
    since = _moment(args.since, "--since") if args.since else None
    db = args.db or config().store_path()
    if not Path(db).is_file():
        raise InputError(f"{db}: no such store")
    store = Store(db)
    try:
        alerted = list(alert_examples(store, labels, since))
        ordinary = ordinary_examples(store, args.ordinary, since, args.seed, {e.text for e in alerted}) \
            if args.ordinary else []
    finally:
        store.close()
    for example in [*alerted, *ordinary]:
        print(json.dumps(example.to_json(), ensure_ascii=False))
    print(f"{len(alerted)} examples from the alerts of {', '.join(sorted(labels)) or 'no rule'} and "
          f"{len(ordinary)} ordinary mentions: check each label, then add the file to `listener rules train`",
          file=sys.stderr)
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    from listener.demo import run_demo

    return run_demo(rules_dir=args.rules, broker=args.broker, prefix=args.prefix, publish=not args.no_publish,
                    out=sys.stdout)


def cmd_run(args: argparse.Namespace) -> int:
    from listener.daemon import run

    return run(args.config, log_format=args.log_format)


def cmd_check_config(args: argparse.Namespace) -> int:
    from listener.config import load_config
    from listener.rules import load_rules

    loaded = load_config(args.config)
    problems = loaded.secret_problems()
    try:
        ruleset = load_rules(loaded.rule_paths())
    except ConfigError as exc:
        problems.extend(exc.problems)
        ruleset = None
    for problem in problems:
        print(str(problem), file=sys.stderr)
    if problems:
        return EXIT_ERROR
    config = loaded.config
    jobs = sum(len(w.jobs()) for w in config.watches)
    assert ruleset is not None
    print(f"{loaded.path}: OK — {len(config.watches)} watches ({jobs} polling jobs), "
          f"{len(ruleset.rules)} rules from {', '.join(loaded.rule_paths())}, store {loaded.store_path()}, "
          f"broker {config.broker.settings().url}")
    return EXIT_OK


def _moment(value: str, option: str) -> datetime:
    """A date (midnight UTC) or an ISO 8601 time given on the command line."""
    from listener.mention import parse_time

    try:
        return parse_time(value if "T" in value else f"{value}T00:00:00Z", option)
    except InputError as exc:
        hint = "write a date like 2026-10-01 or a time like 2026-10-01T12:00:00Z"
        raise InputError(f"{option}: {exc} ({hint})") from None


def cmd_purge(args: argparse.Namespace) -> int:
    from listener.config import load_config
    from listener.store import Store

    before = _moment(args.before, "--before")
    db = args.db or load_config(args.config).store_path()
    store = Store(db)
    try:
        mentions = store.prune(before.timestamp())
        alerts = store.prune_delivered(before.timestamp()) if args.alerts else 0
    finally:
        store.close()
    what = f"{mentions} mentions" + (f" and {alerts} delivered alert messages" if args.alerts else "")
    print(f"{db}: deleted {what} from before {before.isoformat().replace('+00:00', 'Z')}")
    return EXIT_OK
def _broker_settings(args: argparse.Namespace, client_id: str):  # type: ignore[no-untyped-def]
    """Broker from --broker/--prefix, else from the config file's broker section (with its secrets)."""
    from listener.config import load_config
    from listener.publish import parse_broker_url

    if args.broker:
        settings = parse_broker_url(args.broker, client_id=client_id)
    elif args.config:
        settings = load_config(args.config).config.broker.settings()
    else:
        settings = parse_broker_url("mqtt://127.0.0.1:1883", client_id=client_id)
    from dataclasses import replace

    return replace(settings, client_id=client_id, **({"prefix": args.prefix} if args.prefix else {}))


def cmd_alerts_tail(args: argparse.Namespace) -> int:
    from listener.publish.console import Tail

    tail = Tail(_broker_settings(args, "listener-tail"), min_severity=args.min_severity, as_json=args.json,
                active=args.active, count=args.count, emit=lambda text: print(text, flush=True),
                note=lambda text: print(f"listener: {text}", file=sys.stderr, flush=True))
    asyncio.run(tail.run())
    return EXIT_OK


EXIT_UNCONFIRMED = 3


def cmd_alerts_ack(args: argparse.Namespace) -> int:
    import getpass
    import time

    from listener.publish.console import send_ack
    from listener.render import ack_text

    settings = _broker_settings(args, "listener-ack")
    by = args.by or getpass.getuser()
    answer = asyncio.run(send_ack(settings, args.id, by=by, note=args.note, wait_s=args.wait, now_ts=time.time()))
    if answer is None:
        print(f"listener: sent, but the daemon did not answer within {args.wait:g}s; it applies the ack "
              "when it is back online", file=sys.stderr)
        return EXIT_UNCONFIRMED
    if answer.get("status") != "acknowledged":
        print(f"listener: the daemon has no active episode {args.id} (resolved already, or a typo?)",
              file=sys.stderr)
        return EXIT_ERROR
    print(ack_text(answer).removeprefix("ACK").strip())
    return EXIT_OK


def _add_broker_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--broker", metavar="URL", help="mqtt://host:port or mqtts://host:port "
                   "(default: the config file's broker, else mqtt://127.0.0.1:1883)")
    p.add_argument("--prefix", help="topic prefix (default social-listener, or the config file's)")
    p.add_argument("--config", metavar="PATH", help="take the broker (URL, TLS files, user, password) from this config")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="listener",
        description="social-listener: listens to public social media and raises alerts on MQTT.",
    )
    parser.add_argument("--version", action="version",
                        version=f"social-listener {__version__} (rule engine: {native.status()})")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("replay", help="backtest: run a JSON Lines file of mentions through the rules",
                       description="Run a replay file (JSON Lines, one mention per line) through the store, "
                                   "sentiment and rules in event time and print the alerts that fire.")
    p.add_argument("file", help="replay file: one mention (JSON object) per line")
    p.add_argument("--rules", nargs="+", required=True, metavar="PATH", help="rule files or directories")
    p.add_argument("--format", choices=("text", "jsonl"), default="text", help="how to print alerts (default text)")
    p.add_argument("--broker", metavar="URL", help="also publish the alerts, e.g. mqtt://127.0.0.1:1883")
    p.add_argument("--prefix", default="social-listener", help="topic prefix (default social-listener)")
    p.add_argument("--db", metavar="PATH", help="keep the store in this SQLite file (default: a temporary one)")
    p.add_argument("--config", metavar="PATH", help="take the sentiment lexicon overrides from this config file")
    p.set_defaults(func=cmd_replay)

    p = sub.add_parser("rules", help="rule authors' tools: check, test and train",
                       description="Tools for rule authors: validate rule files, explain them, run rule unit tests, "
                                   "train text classifiers.")
    rules_sub = p.add_subparsers(dest="rules_command", metavar="RULES_COMMAND")
    rules_sub.required = True
    q = rules_sub.add_parser("check", help="validate rule files; one line per problem",
                             description="Validate rule files (or directories of them): one FILE:LINE:COLUMN line "
                                         "per problem; warnings for overdue review_by dates and rules that cannot "
                                         "do what they seem to. Exits 1 on errors.")
    q.add_argument("paths", nargs="+", metavar="PATH", help="rule files or directories")
    q.add_argument("--explain", action="store_true", help="also print what each rule will do, in plain words")
    q.add_argument("--strict", action="store_true", help="exit 1 on warnings too")
    q.add_argument("--today", metavar="YYYY-MM-DD", help="the date review_by is checked against (default: today)")
    q.set_defaults(func=cmd_rules_check)
    q = rules_sub.add_parser("test", help="run rule unit tests (*.test.yaml)",
                             description="Run rule unit tests: input mentions at relative times and the alerts "
                                         "expected; failures show expected against actual. Exits 1 on a failure.")
    q.add_argument("paths", nargs="+", metavar="PATH", help="test files, or directories searched for *.test.yaml")
    q.add_argument("-v", "--verbose", action="store_true", help="also list the tests that pass")
    q.set_defaults(func=cmd_rules_test)
    q = rules_sub.add_parser("train", help="train a text classifier for the classifier: filter",
                             description="Train a text classifier from labelled posts (JSON Lines with text and "
                                         "label; 'none' for posts of no class) and ordinary texts, for rules' "
                                         "classifier: filter. The same files give the same model.")
    q.add_argument("labelled", nargs="+", metavar="LABELLED.jsonl", help="labelled posts")
    q.add_argument("--ordinary", action="append", default=[], metavar="FILE",
                   help="ordinary texts: .jsonl with a text, or one per line (or VADER's id, rating, text); repeatable")
    q.add_argument("--out", required=True, metavar="MODEL.json", help="where to write the model")
    q.add_argument("--holdout", type=float, default=0.0, metavar="SHARE",
                   help="keep this share of the ordinary texts out of training, to measure false alarms on")
    q.add_argument("--c", type=float, default=30.0, help="inverse regularisation strength (default 30)")
    q.add_argument("--min-df", type=int, default=2, help="ignore words in fewer posts than this (default 2)")
    q.add_argument("--prior", type=float, default=0.0,
                   help="weight of a short text's evidence: a mass added to every text's norm (default 0)")
    q.set_defaults(func=cmd_rules_train)
    q = rules_sub.add_parser("examples", help="posts the daemon has seen, as training examples to label",
                             description="Write, as JSON Lines for `rules train`, the example posts of the "
                                         "alerts of rules that ask a classifier (labelled as the rule asks: "
                                         "set false alarms to none) and a sample of ordinary mentions "
                                         "(labelled none: correct what the rules missed).")
    q.add_argument("--config", default=str(DEFAULT_CONFIG), help="the daemon's config (its store and rules)")
    q.add_argument("--db", help="the store, instead of the config's")
    q.add_argument("--rules", nargs="+", metavar="PATH", help="the rules, instead of the config's")
    q.add_argument("--rule", action="append", default=[], metavar="RULE=LABEL",
                   help="export this rule's alerts with this label (default: every rule that asks a classifier)")
    q.add_argument("--ordinary", type=int, default=0, metavar="N", help="also N ordinary mentions, drawn at random")
    q.add_argument("--since", metavar="DATE", help="only alerts and mentions from this date or time on")
    q.add_argument("--seed", type=int, default=1, help="which random draw of ordinary mentions (default 1)")
    q.set_defaults(func=cmd_rules_examples)

    p = sub.add_parser("demo", help="run the bundled scenario end to end and show what the comms team receives",
                       description="Replay a bundled scenario (a few hours around officer accounts and a "
                                   "campaign hashtag) through the shipped rules and show the alerts.")
    p.add_argument("--rules", nargs="+", default=[str(SHIPPED_RULES)], metavar="PATH",
                   help=f"rule files or directories (default: the shipped library, {SHIPPED_RULES})")
    p.add_argument("--broker", default="mqtt://127.0.0.1:1883", metavar="URL",
                   help="publish here when it answers (default mqtt://127.0.0.1:1883)")
    p.add_argument("--prefix", default="social-listener", help="topic prefix (default social-listener)")
    p.add_argument("--no-publish", action="store_true", help="only show the alerts")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("run", help="the daemon: listen, score, evaluate rules and publish alerts until stopped",
                       description="Run the daemon (normally under systemd): poll the watches, score and store "
                                   "mentions, run the rules, publish alerts. SIGHUP reloads config and rules; "
                                   "SIGTERM drains and exits 0.")
    p.add_argument("--config", default=str(DEFAULT_CONFIG), metavar="PATH",
                   help=f"config file (default {DEFAULT_CONFIG})")
    p.add_argument("--log-format", choices=("auto", "json", "console"),
                   help="override the config's log.format")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("check-config", help="validate a config file (and its rules and secrets) without starting",
                       description="Validate the daemon's config file, the rule files it names and that every "
                                   "secret it names can be read. Exits 1 with FILE:LINE:COLUMN problems.")
    p.add_argument("config", nargs="?", default=str(DEFAULT_CONFIG), metavar="PATH",
                   help=f"config file (default {DEFAULT_CONFIG})")
    p.set_defaults(func=cmd_check_config)

    p = sub.add_parser("purge", help="delete stored mentions (and optionally delivered alerts) before a date",
                       description="Prune the store by hand; the daemon also prunes on a schedule "
                                   "(store.retention_days).")
    p.add_argument("--before", required=True, metavar="DATE", help="e.g. 2026-10-01 or 2026-10-01T12:00:00Z")
    p.add_argument("--alerts", action="store_true", help="also delete delivered alert messages from before DATE")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--config", default=str(DEFAULT_CONFIG), metavar="PATH",
                       help=f"take the store path from this config (default {DEFAULT_CONFIG})")
    where.add_argument("--db", metavar="PATH", help="the SQLite file to prune")
    p.set_defaults(func=cmd_purge)
    alerts = sub.add_parser("alerts", help="watch and acknowledge alerts on the bus",
                            description="Commands for the comms team: see alerts as they arrive, acknowledge them.")
    alerts_sub = alerts.add_subparsers(dest="alerts_command", metavar="COMMAND")
    alerts_sub.required = True
    p = alerts_sub.add_parser("tail", help="show alerts as they arrive",
                              description="Subscribe to the alert topics and show each alert as it arrives: "
                                          "severity, title, why, sample posts with links (or JSON Lines).")
    _add_broker_options(p)
    p.add_argument("--min-severity", choices=("info", "low", "medium", "high", "critical"), default="info",
                   help="hide alerts below this severity (default info: show all)")
    p.add_argument("--json", action="store_true", help="print each alert message as one JSON line")
    p.add_argument("--active", action="store_true", help="first show the episodes firing now (retained)")
    p.add_argument("--count", type=int, metavar="N", help="exit after N alerts")
    p.set_defaults(func=cmd_alerts_tail)
    p = alerts_sub.add_parser("ack", help="acknowledge an episode: stops its reminders",
                              description="Acknowledge an alert episode by its id: the daemon records who and "
                                          "when, marks the active alert and stops re-notifying it.")
    p.add_argument("id", help="the episode id, as shown by `alerts tail` (e.g. person-in-crisis-1a2b...)")
    p.add_argument("--by", metavar="NAME", help="who acknowledges (default: your login name)")
    p.add_argument("--note", metavar="TEXT", help="a short note for the team, e.g. 'calling the crisis line'")
    p.add_argument("--wait", type=float, default=10.0, metavar="S",
                   help="seconds to wait for the daemon's answer (default 10)")
    _add_broker_options(p)
    p.set_defaults(func=cmd_alerts_ack)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except ConfigError as exc:
        for problem in exc.problems:
            print(str(problem), file=sys.stderr)
        return EXIT_ERROR
    except PublishError as exc:
        print(f"listener: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except ListenerError as exc:
        print(f"listener: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `listener replay ... | head`
        return EXIT_OK
