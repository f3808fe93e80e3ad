"""The daemon's parts that stand alone: logs, sd_notify, /healthz and /metrics, config, purge, the unit."""

from __future__ import annotations

import io
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from listener.health import HealthServer
from listener.logs import configure_logging, redact
from listener.metrics import Metrics
from listener.store import Store
from listener.systemd import Notifier

from conftest import ROOT, run_cli


def test_json_logs_carry_event_and_context_and_never_secrets():
    stream = io.StringIO()
    configure_logging("json", "info", stream)
    redact("s3cr3t-token-value")
    log = logging.getLogger("listener.test")
    log.info("poll failed", extra={"watch": "metro", "platform": "x", "detail": "token=s3cr3t-token-value"})
    try:
        raise RuntimeError("auth with s3cr3t-token-value refused")
    except RuntimeError:
        log.exception("crash")
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert lines[0]["event"] == "poll failed" and lines[0]["level"] == "info"
    assert lines[0]["watch"] == "metro" and lines[0]["platform"] == "x"
    assert lines[0]["time"].endswith("Z")
    assert "s3cr3t-token-value" not in stream.getvalue()
    assert "***" in lines[0]["detail"] and "***" in lines[1]["error"]


def test_console_logs_are_readable():
    stream = io.StringIO()
    configure_logging("console", "info", stream)
    logging.getLogger("listener.test").warning("source backing off", extra={"platform": "mastodon"})
    assert "warning source backing off  platform=mastodon" in stream.getvalue()


@pytest.mark.parametrize("abstract", [False, True])
def test_notify_datagrams_reach_the_socket(tmp_path, abstract):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    if abstract:
        name = f"listener-test-{os.getpid()}"
        sock.bind("\0" + name)
        address = "@" + name
    else:
        address = str(tmp_path / "notify.sock")
        sock.bind(address)
    sock.settimeout(2)
    notifier = Notifier(address)
    assert notifier.ready("listening: 3 jobs")
    assert sock.recv(4096) == b"READY=1\nSTATUS=listening: 3 jobs"
    assert notifier.watchdog()
    assert sock.recv(4096) == b"WATCHDOG=1"
    sock.close()


def test_notify_without_socket_is_a_no_op():
    assert Notifier("").send(ready=1) is False


async def test_healthz_and_metrics_endpoint():
    metrics = Metrics()
    metrics.alerts.labels(rule="backlash-on-post", severity="high", status="firing").inc()
    metrics.mentions_ingested.labels(platform="x").inc(5)
    state = {"ok": True}
    server = HealthServer("127.0.0.1:0", lambda: (state["ok"], {"sources": {"x:metro": "ok"}}), metrics)
    await server.start()
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{server.port}/healthz") as r:
                assert r.status == 200 and (await r.json())["status"] == "ok"
            state["ok"] = False
            async with http.get(f"http://127.0.0.1:{server.port}/healthz") as r:
                assert r.status == 503 and (await r.json())["sources"] == {"x:metro": "ok"}
            async with http.get(f"http://127.0.0.1:{server.port}/metrics") as r:
                text = await r.text()
    finally:
        await server.stop()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    (sample,) = [s for s in families["listener_alerts"].samples if s.name == "listener_alerts_total"]
    assert sample.labels == {"rule": "backlash-on-post", "severity": "high", "status": "firing"}
    assert sample.value == 1


CONFIG = """\
broker:
  url: mqtt://127.0.0.1:1883
watches:
  - id: metro-police
    kind: account
    targets: {x: MetroPolice}
    intervall: 60s
"""


def test_check_config_reports_a_typo_with_line_and_column(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(CONFIG)
    result = run_cli("check-config", str(path))
    assert result.returncode == 1
    assert f"{path}:7:5: unknown key 'intervall', did you mean 'interval'?" in result.stderr


def test_check_config_accepts_a_minimal_config_and_says_what_it_will_do(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(CONFIG.replace("intervall", "interval"))
    result = run_cli("check-config", str(path))
    assert result.returncode == 0, result.stderr
    assert "OK — 1 watches (1 polling jobs)" in result.stdout


def test_check_config_reports_unreadable_secrets_where_they_are_named(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("broker:\n  password: {file: /nonexistent/secret}\n  username: u\n"
                    "sentiment:\n  lexicon: {cringe: -9}\n")
    result = run_cli("check-config", str(path))
    assert result.returncode == 1
    assert f"{path}:5:12: sentiment.lexicon: valence of 'cringe' must be between -4 and 4" in result.stderr
    path.write_text("broker:\n  password: {env: LISTENER_TEST_UNSET_VAR}\n")
    result = run_cli("check-config", str(path), env={k: v for k, v in os.environ.items()
                                                     if k != "LISTENER_TEST_UNSET_VAR"})
    assert result.returncode == 1
    assert f"{path}:2:13: broker.password: environment variable LISTENER_TEST_UNSET_VAR is not set" in result.stderr


def test_shipped_example_config_is_valid(tmp_path):
    result = run_cli("check-config", str(ROOT / "systemd" / "config.example.yaml"))
    assert result.returncode == 0, result.stderr


def test_purge_deletes_old_mentions_and_keeps_new(tmp_path, make_mention):
    db = tmp_path / "s.db"
    store = Store(db)
    store.insert_mentions([make_mention("old", at_s=-40 * 86400), make_mention("new", at_s=0)])
    store.close()
    result = run_cli("purge", "--before", "2026-11-01", "--db", str(db))
    assert result.returncode == 0, result.stderr
    assert "deleted 1 mentions" in result.stdout
    store = Store(db)
    assert [m.text for m in store.mentions_since(0)] == ["new"]
    store.close()
    bad = run_cli("purge", "--before", "last week", "--db", str(db))
    assert bad.returncode == 1 and "--before" in bad.stderr


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_unit_file_verifies_and_is_sandboxed(tmp_path):
    unit = (ROOT / "systemd" / "social-listener.service").read_text()
    # verify checks that ExecStart's program exists: point it at this environment's command.
    listener = Path(sys.executable).parent / "listener"
    path = tmp_path / "social-listener.service"
    path.write_text(unit.replace("/opt/social-listener/venv/bin/listener", str(listener)))
    verify = subprocess.run(["systemd-analyze", "verify", str(path)], capture_output=True, text=True)
    assert verify.returncode == 0, verify.stderr
    security = subprocess.run(["systemd-analyze", "security", "--offline=true", str(path)],
                              capture_output=True, text=True)
    score = float(security.stdout.rsplit("Overall exposure level for", 1)[1].split(":")[1].split()[0])
    assert score <= 2.0, security.stdout[-500:]


def test_run_refuses_to_start_when_a_secret_cannot_be_read(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(f"store: {{path: {tmp_path / 'l.db'}}}\n"
                    "sources:\n  x: {bearer_token: {file: /nonexistent/x-token}}\n"
                    "watches:\n  - {id: w, kind: hashtag, targets: {x: MetroPD}}\n")
    result = run_cli("run", "--config", str(path), timeout=30)
    assert result.returncode == 1
    assert f"{path}:3:" in result.stderr and "cannot read secret file /nonexistent/x-token" in result.stderr
    assert not (tmp_path / "l.db").exists()


def test_run_says_so_when_the_health_port_is_taken(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        path = tmp_path / "config.yaml"
        path.write_text(f"store: {{path: {tmp_path / 'l.db'}}}\nhealth: {{listen: '127.0.0.1:{port}'}}\n"
                        "broker: {url: 'mqtt://127.0.0.1:1'}\n")
        result = run_cli("run", "--config", str(path), timeout=60)
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port} (health.listen)" in result.stderr
    assert "Traceback" not in result.stderr
