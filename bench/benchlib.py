"""What every benchmark script shares: options, the machine's description, tables, JSON results, a private broker."""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any, Iterator, Sequence

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
OUT = BENCH / "out"
SHIPPED_RULES = ROOT / "rules"
PACKAGES = ("vaderSentiment", "sqlite-utils", "aiomqtt", "paho-mqtt", "pydantic", "google-re2", "ruamel.yaml",
            "APScheduler", "aiohttp")


def parser(name: str, description: str, *, n: int | None = None) -> argparse.ArgumentParser:
    """The options every benchmark takes; `n` is the default stream size when the benchmark has one."""
    p = argparse.ArgumentParser(prog=f"bench_{name}.py", description=description)
    if n is not None:
        p.add_argument("--n", type=int, default=n, help=f"mentions in the generated stream (default {n:,})")
        p.add_argument("--seed", type=int, default=7, help="stream seed (default 7)")
    p.add_argument("--out", type=Path, default=OUT, help=f"folder for the JSON result (default {OUT})")
    return p


def machine() -> dict[str, Any]:
    """What the figures depend on: CPU, Python, library versions, and how busy the machine was."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True, timeout=5).stdout.splitlines():
            if line.startswith("Model name:"):
                cpu = line.split(":", 1)[1].strip()
    except (OSError, subprocess.SubprocessError):
        pass
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "os": platform.platform(),
        "packages": versions,
        "mosquitto": mosquitto_version(),
        "loadavg": _loadavg(),
    }


def _loadavg() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def mosquitto_binary() -> str | None:
    found = shutil.which("mosquitto")
    if found:
        return found
    return "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None


def mosquitto_version() -> str | None:
    binary = mosquitto_binary()
    if binary is None:
        return None
    try:
        out = subprocess.run([binary, "-h"], capture_output=True, text=True, timeout=5).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    first = out.splitlines()[0] if out else ""
    return first.removeprefix("mosquitto version ").strip() or None


def write_result(name: str, out_dir: Path, data: dict[str, Any]) -> Path:
    """`<out>/<name>.json`: the figures, the options and the machine, to compare between versions."""
    out_dir.mkdir(parents=True, exist_ok=True)
    record = {
        "benchmark": name,
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "argv": sys.argv[1:],
        "machine": machine(),
        **data,
    }
    path = out_dir / f"{name}.json"
    path.write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain-text table, right-aligned numbers, for the terminal."""
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]

    def line(values: Sequence[str], raw: Sequence[Any] | None = None) -> str:
        out = []
        for i, v in enumerate(values):
            numeric = raw is not None and isinstance(raw[i], (int, float)) and not isinstance(raw[i], bool)
            out.append(v.rjust(widths[i]) if numeric else v.ljust(widths[i]))
        return "  ".join(out).rstrip()

    lines = [line(list(headers)), "  ".join("-" * w for w in widths)]
    lines += [line(c, r) for c, r in zip(cells, rows)]
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        if abs(value) >= 10:
            return f"{value:.1f}"
        if abs(value) >= 1:
            return f"{value:.2f}"
        return f"{value:.3f}"
    return "-" if value is None else str(value)


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) with linear interpolation, as numpy's default does."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    k = (len(ordered) - 1) * q / 100.0
    low = int(k)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (k - low)


def verdict(met: bool | None) -> str:
    return "met" if met else "not met" if met is not None else "n/a"


class Stopwatch:
    """Accumulates the time spent inside `with watch:` blocks (perf_counter)."""

    def __init__(self) -> None:
        self.total_s = 0.0
        self._start = 0.0

    def __enter__(self) -> Stopwatch:
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.total_s += time.perf_counter() - self._start


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def private_broker() -> Iterator[str]:
    """A mosquitto of our own on a free loopback port (never the system one); yields its mqtt:// URL."""
    binary = mosquitto_binary()
    if binary is None:
        raise SystemExit("mosquitto is not installed: `./dev bench` installs it, or apt-get install mosquitto")
    with tempfile.TemporaryDirectory(prefix="bench-mosquitto-") as tmp:
        port = _free_port()
        conf = Path(tmp) / "mosquitto.conf"
        conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
                        f"log_dest file {tmp}/mosquitto.log\n")
        process = subprocess.Popen([binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 10
            while True:
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                        break
                except OSError:
                    if time.monotonic() > deadline or process.poll() is not None:
                        raise SystemExit(f"mosquitto did not start on port {port}") from None
                    time.sleep(0.05)
            yield f"mqtt://127.0.0.1:{port}"
        finally:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
