"""Fixtures for the daemon tests: fast watch settings, real checkpoint bytes, polling helpers."""

from __future__ import annotations

import io
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from alphawatch.config import RunConfig, WatchConfig
from alphawatch.service.watch import Candidate, RunWatcher

from tests.support import wait_until

QUIET = 0.5  # short quiet period so the tests are fast, long enough to be meaningful


def sac_bytes(step: int, hidden: int = 32, seed: int = 0) -> bytes:
    """A real SAC-shaped torch.save checkpoint, as bytes (written by the tests as they like)."""
    import torch

    from tests.factories import sac_checkpoint_dict

    buf = io.BytesIO()
    torch.save(sac_checkpoint_dict(step, seed=seed, hidden=hidden), buf)
    return buf.getvalue()


def slow_write(path: Path, data: bytes, chunks: int, seconds: float) -> None:
    """Write `data` into `path` in place, in `chunks` pieces spread over `seconds` (like a slow copy)."""
    pause = seconds / chunks
    step = -(-len(data) // chunks)
    with open(path, "wb") as fh:
        for i in range(0, len(data), step):
            if i:
                time.sleep(pause)
            fh.write(data[i : i + step])
            fh.flush()
            os.fsync(fh.fileno())


class Emitted:
    """Collects the watcher's candidates (thread-safe)."""

    def __init__(self) -> None:
        self.items: list[Candidate] = []
        self.times: list[float] = []
        self._lock = threading.Lock()

    def __call__(self, cand: Candidate) -> None:
        with self._lock:
            self.items.append(cand)
            self.times.append(time.monotonic())

    def paths(self) -> list[Path]:
        with self._lock:
            return [c.path for c in self.items]


@pytest.fixture
def make_watcher(tmp_path: Path):
    """Build and start a RunWatcher over a folder with fast settings; stopped at teardown."""
    started: list[RunWatcher] = []

    def build(
        folder: Path | None = None, *, observer: str = "auto", recursive: bool = False, rescan: float = 1.0
    ) -> tuple[RunWatcher, Emitted]:
        folder = folder or tmp_path / "ckpts"
        cfg = WatchConfig(
            observer=observer,
            polling_interval_seconds=0.2,
            quiet_period_seconds=QUIET,
            rescan_interval_seconds=rescan,
        )
        emitted = Emitted()
        watcher = RunWatcher(RunConfig(watch=folder, name="run1", recursive=recursive), cfg, emitted)
        watcher.start()
        started.append(watcher)
        return watcher, emitted

    yield build
    for w in started:
        w.stop()


# ------------------------------------------------------------------ heavy-tailed weights


def heavy_tailed(shape: tuple[int, ...], gen: Any, power: float = 1.0) -> Any:
    """A matrix with singular values s_i = i**-power (random orthogonal bases).

    Why this gives a low alpha on demand: the eigenvalues of W^T W are then
    lambda_i = i**(-2 * power); a rank-size law lambda ~ i**(-1/(alpha-1)) means a
    density tail p(lambda) ~ lambda**-alpha with alpha = 1 + 1 / (2 * power), so
    power=1 gives alpha ~1.5 (WeightWatcher measures ~1.54), well under the stop
    threshold of 2, while default-initialized layers measure 3 to 7.
    """
    import torch

    m, n = shape
    r = min(m, n)
    u, _ = torch.linalg.qr(torch.randn(m, r, generator=gen))
    v, _ = torch.linalg.qr(torch.randn(n, r, generator=gen))
    s = torch.arange(1, r + 1, dtype=torch.float32) ** (-power)
    return (u * s) @ v.T


def save_heavy_tailed_sac(path: Path, step: int, hidden: int = 64, seed: int = 0) -> Path:
    """A SAC checkpoint (same layout as factories.save_sac_checkpoint) whose every weight
    matrix is heavy-tailed, so each network's alpha is ~1.5."""
    import torch

    from tests.factories import atomic_torch_save, sac_checkpoint_dict

    obj = sac_checkpoint_dict(step, seed=seed, hidden=hidden)
    gen = torch.Generator().manual_seed(seed)
    for value in obj.values():
        if isinstance(value, dict) and "0.weight" in value:
            for key, tensor in value.items():
                if key.endswith("weight") and tensor.dim() == 2:
                    value[key] = heavy_tailed(tuple(tensor.shape), gen)
    return atomic_torch_save(obj, path)


# ------------------------------------------------------------------ a real daemon process


class DaemonProcess:
    """`alphawatch run` as a real subprocess, with its JSON log, ledger and metrics at hand."""

    def __init__(
        self,
        base: Path,
        watch: Path,
        *,
        run: str = "run1",
        extra: list[str] | None = None,
        config: dict[str, Any] | None = None,
        popen: dict[str, Any] | None = None,
        python: str | None = None,
    ) -> None:
        import subprocess
        import sys

        import yaml

        self.base, self.watch, self.run_name = base, watch, run
        self.state = base / "state" / "ledger.sqlite3"
        self.stop_file = base / "signals" / "stop.json"
        cfg: dict[str, Any] = {
            "watch": {
                "quiet_period_seconds": QUIET,
                "rescan_interval_seconds": 1.0,
                "polling_interval_seconds": 0.2,
            },
            "worker": {"timeout_seconds": 120, "memory_limit_mb": 2048},
        }
        for section, values in (config or {}).items():
            cfg.setdefault(section, {}).update(values)
        self.config_path = base / "alphawatch.yaml"
        self.config_path.write_text(yaml.safe_dump(cfg))
        self.log_path = base / f"daemon-{time.monotonic_ns()}.log"
        args = [
            python or sys.executable,
            "-m",
            "alphawatch",
            "run",
            "--config",
            str(self.config_path),
            "--watch",
            str(watch),
            "--run",
            run,
            "--state",
            str(self.state),
            "--metrics-host",
            "127.0.0.1",
            "--metrics-port",
            "0",
            "--stop-file",
            str(self.stop_file),
            "--log-format",
            "json",
            *(extra or []),
        ]
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(args, stdout=self._log, stderr=subprocess.STDOUT, cwd=base,
                                     **(popen or {}))
        self.port = int(self.wait_event("metrics_listening", timeout=60)["port"])

    # ---- log
    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        import json

        out = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            try:
                item = json.loads(line)
            except ValueError:
                continue
            if isinstance(item, dict) and (name is None or item.get("event") == name):
                out.append(item)
        return out

    def wait_event(self, name: str, timeout: float = 60.0, count: int = 1) -> dict[str, Any]:
        def found() -> Any:
            if self.proc.poll() is not None:
                pytest.fail(f"daemon exited ({self.proc.returncode}):\n{self.log_path.read_text()[-3000:]}")
            items = self.events(name)
            return items[count - 1] if len(items) >= count else None

        return wait_until(found, timeout=timeout)

    # ---- http
    def get(self, route: str) -> tuple[int, str]:
        import urllib.error
        import urllib.request

        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{route}", timeout=10) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        """{(sample name, sorted labels): value} from a live scrape of /metrics."""
        from prometheus_client.parser import text_string_to_metric_families

        status, text = self.get("/metrics")
        assert status == 200
        out = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
        return out

    def metric(self, name: str, **labels: str) -> float | None:
        key = (name, tuple(sorted({"run": self.run_name, **labels}.items())))
        return self.metrics().get(key)

    # ---- ledger (read-only, from another process, as an operator would)
    def rows(self) -> list[dict[str, Any]]:
        import sqlite3

        if not self.state.exists():
            return []
        conn = sqlite3.connect(f"file:{self.state}?mode=ro", uri=True, timeout=30)
        try:
            conn.row_factory = sqlite3.Row
            return [dict(r) for r in conn.execute("SELECT * FROM checkpoints ORDER BY id")]
        finally:
            conn.close()

    def attempts(self) -> list[dict[str, Any]]:
        import sqlite3

        conn = sqlite3.connect(f"file:{self.state}?mode=ro", uri=True, timeout=30)
        try:
            conn.row_factory = sqlite3.Row
            return [dict(r) for r in conn.execute("SELECT * FROM attempts ORDER BY id")]
        finally:
            conn.close()

    def wait_rows(self, predicate: Callable[[list[dict[str, Any]]], bool], timeout: float = 60.0) -> list:
        def check() -> Any:
            if self.proc.poll() is not None:
                pytest.fail(f"daemon exited ({self.proc.returncode}):\n{self.log_path.read_text()[-3000:]}")
            rows = self.rows()
            return rows if predicate(rows) else None

        return wait_until(check, timeout=timeout, interval=0.1)

    # ---- lifecycle
    def terminate(self, timeout: float = 60.0) -> int:
        import signal

        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=timeout)
        self._log.close()
        return code

    def kill9(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=30)
        self._log.close()


@pytest.fixture
def daemon_factory(tmp_path: Path):
    """Start daemons over tmp_path; any still running at teardown are killed."""
    started: list[DaemonProcess] = []

    def start(watch: Path | None = None, **kw: Any) -> DaemonProcess:
        d = DaemonProcess(tmp_path, watch or tmp_path / "ckpts", **kw)
        started.append(d)
        return d

    yield start
    for d in started:
        if d.proc.poll() is None:
            d.proc.kill()
            d.proc.wait(timeout=30)
