"""mqtts:// with a CA file and a password file against a private mosquitto; bad settings retry, never crash."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import os
import secrets
import shutil
import ssl
import subprocess
from pathlib import Path

import aiomqtt
import pytest

from listener.config import BrokerConfig
from listener.pipeline import Pipeline
from listener.publish import AlertRelay
from listener.rules import Engine, load_rules
from listener.sentiment import SentimentScorer
from listener.store import Store

from conftest import Mosquitto
from delivery_helpers import write_rules

PASSWORD = "correct horse battery staple"

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None,
                                reason="the openssl binary is needed to make test certificates")


def openssl(*args: str | Path) -> None:
    subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True)


def make_ca(directory: Path, name: str) -> tuple[Path, Path]:
    key, crt = directory / f"{name}.key", directory / f"{name}.crt"
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", crt, "-days", "2",
            "-subj", f"/CN={name}")
    return key, crt


def make_server_cert(directory: Path, ca_key: Path, ca_crt: Path) -> tuple[Path, Path]:
    key, csr, crt = directory / "server.key", directory / "server.csr", directory / "server.crt"
    ext = directory / "san.cnf"
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr, "-subj", "/CN=localhost")
    openssl("x509", "-req", "-in", csr, "-CA", ca_crt, "-CAkey", ca_key, "-CAcreateserial", "-out", crt,
            "-days", "2", "-extfile", ext)
    return key, crt


def write_password_file(path: Path, user: str, password: str) -> None:
    if shutil.which("mosquitto_passwd"):
        path.touch()
        subprocess.run(["mosquitto_passwd", "-b", str(path), user, password], check=True, capture_output=True)
        return
    # mosquitto 2's own format: $7$ = PBKDF2-SHA512, 101 iterations, 12-byte salt.
    salt = secrets.token_bytes(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), base64.b64encode(salt), 101)
    path.write_text(f"{user}:$7$101${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}\n")


class SecureMosquitto(Mosquitto):
    """TLS only, no anonymous clients, one user from a password file."""

    def write_config(self) -> Path:
        d = self.directory
        conf = d / "mosquitto.conf"
        conf.write_text(
            ("user root\n" if os.geteuid() == 0 else "")
            + "per_listener_settings false\nallow_anonymous false\n"
            f"password_file {d}/passwd\n"
            f"listener {self.port} 127.0.0.1\n"
            f"cafile {d}/ca.crt\ncertfile {d}/server.crt\nkeyfile {d}/server.key\n"
            f"log_dest file {d}/mosquitto.log\n"
        )
        return conf


@pytest.fixture
def secure_broker(tmp_path):
    d = tmp_path / "secure"
    d.mkdir()
    ca_key, ca_crt = make_ca(d, "ca")
    make_server_cert(d, ca_key, ca_crt)
    make_ca(d, "other-ca")
    write_password_file(d / "passwd", "listener", PASSWORD)
    (tmp_path / "mqtt-password").write_text(PASSWORD + "\n")
    broker = SecureMosquitto(d)
    broker.start()
    yield broker
    broker.stop()


def broker_config(broker: SecureMosquitto, tmp_path: Path, *, ca: str = "ca.crt",
                  password_file: str = "mqtt-password") -> BrokerConfig:
    return BrokerConfig.model_validate({
        "url": f"mqtts://127.0.0.1:{broker.port}", "client_id": "secure-daemon", "prefix": "metro",
        "username": "listener", "password": {"file": str(tmp_path / password_file)},
        "ca_file": str(broker.directory / ca),
    })


async def test_tls_with_ca_file_and_password_from_a_file_delivers(secure_broker, tmp_path, make_mention, caplog):
    caplog.set_level(logging.DEBUG)
    settings = broker_config(secure_broker, tmp_path).settings()
    assert PASSWORD not in repr(settings)
    store = Store(tmp_path / "daemon.db")
    pipeline = Pipeline.resume(store, SentimentScorer(), Engine(load_rules([write_rules(tmp_path / "rules")]).rules))
    relay = AlertRelay(store, settings, renotify_after_s=0)
    runner = asyncio.create_task(relay.run())
    context = ssl.create_default_context(cafile=str(secure_broker.directory / "ca.crt"))
    async with aiomqtt.Client("127.0.0.1", secure_broker.port, username="listener", password=PASSWORD,
                              tls_context=context, timeout=10) as sub:
        await sub.subscribe("metro/alerts/#", qos=1)
        (alert,) = pipeline.ingest([make_mention("help me", author="kim")]).alerts
        relay.wake()
        message = await asyncio.wait_for(anext(sub.messages), 10)
    assert str(message.topic) == "metro/alerts/critical/cry-for-help"
    assert json.loads(message.payload)["id"] == alert.id  # type: ignore[arg-type]
    await relay.close(drain_timeout_s=2)
    await runner
    assert PASSWORD not in caplog.text
    store.close()


@pytest.mark.parametrize(("ca", "password_file", "expected"), [
    ("other-ca.crt", "mqtt-password", "cannot verify the TLS certificate"),
    ("ca.crt", "wrong-password", "refused the login of user 'listener'"),
])
async def test_wrong_ca_or_password_is_a_clear_error_and_is_retried(secure_broker, tmp_path, caplog, ca,
                                                                   password_file, expected):
    (tmp_path / "wrong-password").write_text("not the password\n")
    caplog.set_level(logging.DEBUG)
    settings = broker_config(secure_broker, tmp_path, ca=ca, password_file=password_file).settings()
    store = Store(tmp_path / "daemon.db")
    relay = AlertRelay(store, settings, backoff_initial_s=0.1, backoff_max_s=0.2)
    runner = asyncio.create_task(relay.run())
    deadline = asyncio.get_running_loop().time() + 20
    while relay.stats.connect_failures < 3:
        assert asyncio.get_running_loop().time() < deadline, relay.last_error
        assert not runner.done(), "the relay must keep retrying, not crash"
        await asyncio.sleep(0.05)
    assert not relay.connected
    assert relay.last_error is not None and expected in relay.last_error
    assert caplog.text.count(expected) >= 3  # one line per attempt
    assert PASSWORD not in caplog.text and "not the password" not in caplog.text
    await relay.close(drain_timeout_s=1)
    await runner
    store.close()


class MutualTlsMosquitto(SecureMosquitto):
    """As SecureMosquitto, and every client must show a certificate signed by the CA."""

    def write_config(self) -> Path:
        conf = super().write_config()
        conf.write_text(conf.read_text() + "require_certificate true\n")
        return conf


def make_client_cert(directory: Path, ca_key: Path, ca_crt: Path) -> tuple[Path, Path]:
    key, csr, crt = directory / "client.key", directory / "client.csr", directory / "client.crt"
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr, "-subj", "/CN=social-listener")
    openssl("x509", "-req", "-in", csr, "-CA", ca_crt, "-CAkey", ca_key, "-CAcreateserial", "-out", crt,
            "-days", "2")
    return key, crt


async def test_client_certificate_is_presented_when_the_broker_requires_one(tmp_path, make_mention):
    d = tmp_path / "mtls"
    d.mkdir()
    ca_key, ca_crt = make_ca(d, "ca")
    make_server_cert(d, ca_key, ca_crt)
    client_key, client_crt = make_client_cert(d, ca_key, ca_crt)
    write_password_file(d / "passwd", "listener", PASSWORD)
    (tmp_path / "mqtt-password").write_text(PASSWORD + "\n")
    broker = MutualTlsMosquitto(d)
    broker.start()
    try:
        base = broker_config(broker, tmp_path)
        without = base.settings()
        with_cert = base.model_copy(update={"cert_file": str(client_crt), "key_file": str(client_key)}).settings()
        store = Store(tmp_path / "daemon.db")

        # Without a certificate the broker drops us after the handshake (TLS 1.3 reports it late, so
        # the client sees no CONNACK): an error, retried, never a connection.
        relay = AlertRelay(store, without, backoff_initial_s=0.1, backoff_max_s=0.2, timeout_s=2)
        runner = asyncio.create_task(relay.run())
        deadline = asyncio.get_running_loop().time() + 20
        while relay.stats.connect_failures < 2:
            assert asyncio.get_running_loop().time() < deadline, relay.last_error
            assert not runner.done()
            await asyncio.sleep(0.05)
        assert not relay.connected
        await relay.close(drain_timeout_s=1)
        await runner

        # With one, alerts flow.
        pipeline = Pipeline.resume(store, SentimentScorer(),
                                   Engine(load_rules([write_rules(tmp_path / "rules")]).rules))
        relay = AlertRelay(store, with_cert, renotify_after_s=0)
        runner = asyncio.create_task(relay.run())
        context = ssl.create_default_context(cafile=str(d / "ca.crt"))
        context.load_cert_chain(str(client_crt), str(client_key))
        async with aiomqtt.Client("127.0.0.1", broker.port, username="listener", password=PASSWORD,
                                  tls_context=context, timeout=10) as sub:
            await sub.subscribe("metro/alerts/#", qos=1)
            (alert,) = pipeline.ingest([make_mention("help me", author="kim")]).alerts
            relay.wake()
            message = await asyncio.wait_for(anext(sub.messages), 10)
        assert json.loads(message.payload)["id"] == alert.id  # type: ignore[arg-type]
        await relay.close(drain_timeout_s=2)
        await runner
        store.close()
    finally:
        broker.stop()
