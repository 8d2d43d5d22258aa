"""The HTTP server: live scrapes checked by promtool, probes, content negotiation, real Prometheus."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from alphawatch.config import load_config
from alphawatch.service.http import MetricsServer
from alphawatch.service.ledger import Ledger
from alphawatch.service.metrics import LedgerCollector, build_registry
from prometheus_client import CollectorRegistry

from tests.service.test_metrics import fill_ledger
from tests.support import free_port

PROMTOOL = shutil.which("promtool")
PROMETHEUS = shutil.which("prometheus")


def get(url: str, accept: str | None = None) -> tuple[int, str, str]:
    request = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.headers["Content-Type"], response.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.headers["Content-Type"], err.read().decode()


@pytest.fixture
def served(tmp_path: Path):  # type: ignore[no-untyped-def]
    ledger = Ledger(tmp_path / "ledger.sqlite3")
    fill_ledger(ledger)
    config = load_config(None, overrides={"runs.watch": str(tmp_path), "runs.name": "sac",
                                          "metrics.per_layer": True}, env={})
    registry = build_registry(ledger, config)  # what the daemon serves
    state = {"ready": (True, "observer running, ledger writable")}
    server = MetricsServer("127.0.0.1", 0, registry, ready=lambda: state["ready"])
    server.start()
    yield server, state, ledger
    server.stop()
    ledger.close()


@pytest.mark.skipif(PROMTOOL is None, reason="promtool not installed (make tools)")
def test_promtool_check_metrics_passes_on_a_live_scrape(served) -> None:  # type: ignore[no-untyped-def]
    server, _, _ = served
    status, content_type, body = get(f"http://127.0.0.1:{server.port}/metrics")
    assert status == 200 and content_type.startswith("text/plain; version=0.0.4")
    assert "alphawatch_alpha{network=\"actor\",run=\"sac\"} 2.2" in body
    # the standard families every Prometheus user expects on a target
    for family in ("process_cpu_seconds_total", "process_resident_memory_bytes", "process_open_fds",
                   "process_start_time_seconds", "python_info"):
        assert f"\n{family}" in body, family
    check = subprocess.run([PROMTOOL, "check", "metrics"], input=body, capture_output=True, text=True,
                           timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr
    assert check.stdout.strip() == "" and check.stderr.strip() == ""  # not even a lint warning


def test_openmetrics_on_request(served) -> None:  # type: ignore[no-untyped-def]
    server, _, _ = served
    status, content_type, body = get(f"http://127.0.0.1:{server.port}/metrics",
                                     accept="application/openmetrics-text; version=1.0.0")
    assert status == 200 and content_type.startswith("application/openmetrics-text")
    assert body.rstrip().endswith("# EOF")
    assert "alphawatch_checkpoint_failures_total{" in body


def test_healthz_and_readyz(served) -> None:  # type: ignore[no-untyped-def]
    server, state, _ = served
    base = f"http://127.0.0.1:{server.port}"
    assert get(f"{base}/healthz")[::2] == (200, "ok\n")
    assert get(f"{base}/readyz")[::2] == (200, "ready: observer running, ledger writable\n")
    state["ready"] = (False, "observer not running")
    assert get(f"{base}/readyz")[::2] == (503, "not ready: observer not running\n")

    def broken() -> tuple[bool, str]:
        raise RuntimeError("boom")

    server.ready = broken  # exceptions in the check are a 503, not a dead server
    server._server.ready = broken  # type: ignore[union-attr]
    status, _, body = get(f"{base}/readyz")
    assert status == 503 and "RuntimeError: boom" in body
    assert get(f"{base}/healthz")[0] == 200
    assert get(f"{base}/nope")[0] == 404


def test_readyz_follows_the_ledger(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "l.db")

    def ready() -> tuple[bool, str]:
        return (True, "ok") if ledger.is_writable() else (False, "ledger not writable")

    with MetricsServer("127.0.0.1", 0, CollectorRegistry(), ready=ready) as server:
        assert get(f"http://127.0.0.1:{server.port}/readyz")[0] == 200
        ledger.close()
        assert get(f"http://127.0.0.1:{server.port}/readyz")[::2] == (503, "not ready: ledger not writable\n")


def test_slow_scrape_does_not_block_probes(tmp_path: Path) -> None:
    release = threading.Event()

    class Slow:
        def collect(self):  # type: ignore[no-untyped-def]
            release.wait(10)
            return []

    registry = CollectorRegistry()
    registry.register(Slow())  # type: ignore[arg-type]
    with MetricsServer("127.0.0.1", 0, registry, ready=lambda: (True, "ok")) as server:
        scraper = threading.Thread(target=get, args=(f"http://127.0.0.1:{server.port}/metrics",))
        scraper.start()
        time.sleep(0.2)
        started = time.monotonic()
        assert get(f"http://127.0.0.1:{server.port}/healthz")[0] == 200
        assert time.monotonic() - started < 2
        release.set()
        scraper.join(10)


def test_port_in_use_is_a_clear_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = MetricsServer("127.0.0.1", port, CollectorRegistry(), ready=lambda: (True, "ok"))
        with pytest.raises(OSError, match=f"cannot serve metrics on 127.0.0.1:{port}"):
            server.start()


def test_stop_releases_the_port() -> None:
    server = MetricsServer("127.0.0.1", 0, CollectorRegistry(), ready=lambda: (True, "ok"))
    server.start()
    port = server.port
    server.stop()
    server.stop()  # idempotent
    again = MetricsServer("127.0.0.1", port, CollectorRegistry(), ready=lambda: (True, "ok"))
    again.start()
    again.stop()


@pytest.mark.e2e
@pytest.mark.skipif(PROMETHEUS is None, reason="prometheus not installed (make tools)")
def test_real_prometheus_scrapes_the_values(served, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    server, _, _ = served
    port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        "scrape_configs:\n"
        f"  - job_name: alphawatch\n    static_configs: [{{targets: ['127.0.0.1:{server.port}']}}]\n")
    proc = subprocess.Popen(
        [PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        query = f"http://127.0.0.1:{port}/api/v1/query?query=alphawatch_alpha"
        deadline = time.monotonic() + 60
        result: list[dict[str, object]] = []
        while time.monotonic() < deadline and not result:
            time.sleep(1)
            try:
                status, _, body = get(query)
            except OSError:
                continue
            if status == 200:
                result = json.loads(body)["data"]["result"]
        assert result, "Prometheus never stored alphawatch_alpha"
        assert result[0]["metric"]["network"] == "actor" and float(result[0]["value"][1]) == 2.2
        status, _, body = get(f"http://127.0.0.1:{port}/api/v1/query?query=up")
        assert json.loads(body)["data"]["result"][0]["value"][1] == "1"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.mark.e2e
@pytest.mark.skipif(PROMTOOL is None, reason="promtool not installed (make tools)")
def test_real_analysis_results_scrape_clean(tmp_path: Path) -> None:
    """Results from the real engine on real SAC checkpoints, through the ledger, to promtool."""
    from alphawatch.analysis import AnalysisOptions, analyze_checkpoint
    from alphawatch.checkpoints import load

    from tests.factories import save_sac_checkpoint

    ledger = Ledger(tmp_path / "ledger.sqlite3")
    for step in (1000, 2000):
        path = save_sac_checkpoint(tmp_path / f"step_{step}.pt", step, hidden=64)
        ledger.record_seen("sac", str(path), size=1, mtime_ns=step, inode=step, step=step)
        row = ledger.claim_next()
        assert row is not None
        result = analyze_checkpoint(load(path), AnalysisOptions(dead_neuron_method="weight"))
        assert ledger.mark_done(row.id, result, 1.0)
    registry = CollectorRegistry()
    registry.register(LedgerCollector(ledger, runs=["sac"], per_layer=True))
    with MetricsServer("127.0.0.1", 0, registry, ready=lambda: (True, "ok")) as server:
        status, _, body = get(f"http://127.0.0.1:{server.port}/metrics")
    ledger.close()
    assert status == 200
    newest = result["networks"]
    for network, net in newest.items():
        alpha = net["summary"]["alpha"]
        if alpha is not None:
            assert f'alphawatch_alpha{{network="{network}",run="sac"}} {alpha!r}' in body
        assert f'alphawatch_health{{network="{network}",run="sac",status="{net["summary"]["health"]}"}} 1.0' \
            in body
    assert 'alphawatch_checkpoint_step{run="sac"} 2000.0' in body
    assert "alphawatch_dead_neuron_ratio{" in body and "alphawatch_layer_alpha{" in body
    check = subprocess.run([PROMTOOL, "check", "metrics"], input=body, capture_output=True, text=True,
                           timeout=60)
    assert check.returncode == 0 and not (check.stdout + check.stderr).strip(), check.stdout + check.stderr


def test_idle_connections_are_closed_and_capped() -> None:
    server = MetricsServer("127.0.0.1", 0, CollectorRegistry(), ready=lambda: (True, "ok"),
                           max_connections=4, idle_timeout=0.5)
    server.start()
    try:
        silent = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        assert silent.recv(1) == b""  # closed by the server after the idle timeout
        silent.close()
        held = [socket.create_connection(("127.0.0.1", server.port), timeout=5) for _ in range(10)]
        assert get(f"http://127.0.0.1:{server.port}/healthz")[0] == 200  # the longest waiter made room
        assert server.open_connections() <= 4
        for sock in held:
            sock.close()
    finally:
        server.stop()
