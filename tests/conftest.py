"""Shared fixtures: a private mosquitto per test, temporary stores, mention factories."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from listener import native
from listener.mention import Mention, Sentiment

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("LISTENER_SHARED", ROOT.parent / "shared"))
T0 = datetime(2026, 11, 26, 12, 0, tzinfo=timezone.utc)



def pytest_report_header() -> str:
    return f"rule engine: {native.status()}"

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout_s}s")


@dataclass
class Mosquitto:
    """A private broker on a free port; tests may stop, start and reconfigure it."""

    directory: Path
    port: int = field(default_factory=free_port)
    extra_config: str = ""
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def write_config(self) -> Path:
        conf = self.directory / "mosquitto.conf"
        # As root, mosquitto drops to the `mosquitto` user, which cannot write the private
        # test directory: persistence and the log would fail silently.
        run_as = "user root\n" if os.geteuid() == 0 else ""
        conf.write_text(
            run_as
            + f"listener {self.port} 127.0.0.1\n"
            "allow_anonymous true\n"
            "persistence true\n"
            f"persistence_location {self.directory}/\n"
            "autosave_interval 1\n"
            "max_queued_messages 100000\n"
            f"log_dest file {self.directory}/mosquitto.log\n"
            + self.extra_config
        )
        return conf

    def start(self) -> None:
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not Path(binary).exists():
            pytest.fail("the mosquitto binary is not installed: run ./dev test, which installs it")
        conf = self.write_config()
        self.process = subprocess.Popen([binary, "-c", str(conf)], stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
        wait_for_port(self.port)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    directory = tmp_path / "mosquitto"
    directory.mkdir()
    broker = Mosquitto(directory)
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture
def make_mention() -> Callable[..., Mention]:
    """Mentions at T0 + `at_s`, scored with the given compound unless `scored=False`."""
    counter = iter(range(10**9))

    def make(text: str = "hello", *, at_s: float = 0.0, compound: float | None = 0.0, scored: bool = True,
             **fields: Any) -> Mention:
        created = T0 + timedelta(seconds=at_s)
        data: dict[str, Any] = {"platform": "x", "id": f"m{next(counter)}", "text": text,
                                "created_at": created.isoformat()}
        data.update(fields)
        m = Mention.from_dict(data)
        if scored and compound is not None:
            pos = max(compound, 0.0)
            neg = max(-compound, 0.0)
            m = Mention(**{**{f: getattr(m, f) for f in m.__dataclass_fields__},
                           "sentiment": Sentiment(compound, pos, 1 - pos - neg, neg)})
        return m

    return make


def run_cli(*args: str, timeout: float = 120, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """Run the installed `listener` command as a user would, in a subprocess."""
    return subprocess.run([sys.executable, "-m", "listener", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=kwargs.pop("cwd", ROOT), **kwargs)


@pytest.fixture
async def session() -> Any:
    """One aiohttp client session per test, for the source tests against the fake platforms."""
    import aiohttp

    async with aiohttp.ClientSession() as s:
        yield s
