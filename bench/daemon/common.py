"""What every daemon benchmark needs: a real `alphawatch run` process, its log, its /metrics,
and the CPU and memory of it and its worker from /proc. Standard library (plus the
project's own test factories for checkpoints)."""

from __future__ import annotations

import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # tests.factories: the same seeded SAC checkpoints the tests use


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.02) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


class Daemon:
    """`alphawatch run` with a config written from `settings` (YAML sections), in `base`."""

    def __init__(self, base: Path, settings: dict[str, Any], env: dict[str, str] | None = None) -> None:
        self.base = base
        base.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        config = {"metrics": {"host": "127.0.0.1", "port": self.port},
                  "state": {"path": str(base / "state" / "ledger.sqlite3")},
                  "stop": {"file": str(base / "signals" / "{run}-stop.json")},
                  "logging": {"format": "json"}}
        for section, values in settings.items():
            if isinstance(values, dict):
                config.setdefault(section, {}).update(values)
            else:
                config[section] = values
        self.config_path = base / "alphawatch.yaml"
        self.config_path.write_text(yaml.safe_dump(config))
        self.log_path = base / "daemon.log"
        self._log = open(self.log_path, "wb")
        command = [sys.executable, "-m", "alphawatch", "run", "--config", str(self.config_path)]
        self.proc = subprocess.Popen(command, stdout=self._log, stderr=subprocess.STDOUT, cwd=base,
                                     env={**os.environ, **(env or {})})
        self.wait_event("metrics_listening", 60)

    def events(self, name: str) -> list[dict[str, Any]]:
        out = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            try:
                item = json.loads(line)
            except ValueError:
                continue
            if item.get("event") == name:
                out.append(item)
        return out

    def wait_event(self, name: str, timeout: float, count: int = 1) -> dict[str, Any]:
        def found() -> Any:
            if self.proc.poll() is not None:
                raise RuntimeError(f"daemon exited: {self.log_path.read_text()[-2000:]}")
            items = self.events(name)
            return items[count - 1] if len(items) >= count else None

        return wait_for(found, timeout, name, interval=0.05)  # type: ignore[no-any-return]

    def get(self, route: str) -> tuple[float, str]:
        """(seconds the request took, body)."""
        start = time.perf_counter()
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{route}", timeout=30) as resp:
            body = resp.read().decode()
        return time.perf_counter() - start, body

    def worker_pid(self) -> int:
        return int(self.events("worker_ready")[-1]["pid"])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


def metric_value(text: str, name: str, **labels: str) -> float | None:
    """One sample's value from an exposition text (None if absent)."""
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            head, _, value = line.rpartition(" ")
            got = head[len(name):].strip("{}")
            if ",".join(sorted(got.split(","))) == want or (not want and not got):
                return float(value)
    return None


def sac_checkpoint_bytes(step: int, seed: int, hidden: int = 256) -> bytes:
    """A SAC-sized torch.save checkpoint (actor, two critics, their targets, an optimizer)."""
    import io

    import torch

    from tests.factories import sac_checkpoint_dict

    buf = io.BytesIO()
    torch.save(sac_checkpoint_dict(step, seed=seed, hidden=hidden), buf)
    return buf.getvalue()


def place(folder: Path, name: str, data: bytes) -> float:
    """Write `data` beside `folder` and rename it in (atomic, as Lightning does); the time of the rename."""
    staging = folder.parent / f".staging-{name}"
    staging.write_bytes(data)
    os.rename(staging, folder / name)
    return time.time()
