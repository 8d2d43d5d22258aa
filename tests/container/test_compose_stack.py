"""deploy/docker-compose.yml brought up for real, as a user would, with the CI override.

`docker compose up` of the shipped file plus tests/container/compose.ci.yml (Prometheus and
Alertmanager from Debian's packages on the image's base, Grafana left out: no build of it is
reachable here). The trainer trains and writes checkpoints; the test then drops one checkpoint
with heavy-tailed weights (alpha ~1.5) into the `checkpoints` volume through a throwaway
container, as another writer would. Then, against the running stack:

- alphawatch writes the stop signal and the trainer halts itself (exit 0);
- Prometheus scrapes alphawatch: `up{job="alphawatch"} == 1`;
- the stop-signal alert (AlphawatchStopSignalRaised, from the shipped rules) reaches
  Alertmanager (its v2 API, and `amtool alert query`);
- `docker compose down -v` leaves no container, volume or network of the project behind.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.container.conftest import Images
from tests.container.dockercli import (
    IMAGE_UID,
    REPO,
    TOOLS,
    compose_command,
    docker,
    http_get,
    labelled,
    logs,
    state,
    wait_exited,
)
from tests.support import wait_until

pytestmark = [pytest.mark.container, pytest.mark.e2e, pytest.mark.timeout(3600)]

COMPOSE = REPO / "deploy" / "docker-compose.yml"
OVERRIDE = Path(__file__).with_name("compose.ci.yml")
MONITORING = Path(__file__).with_name("monitoring.Dockerfile")
MONITORING_IMAGES = {"prometheus": "alphawatch-ci-prometheus:debian",
                     "alertmanager": "alphawatch-ci-alertmanager:debian"}
RUN = "sac"  # deploy/alphawatch/config.yaml


@dataclass
class Stack:
    project: str
    base: list[str]

    def compose(self, *args: str, check: bool = True,
                timeout: float = 600) -> subprocess.CompletedProcess[str]:
        argv = [*self.base, "-p", self.project, "-f", str(COMPOSE), "-f", str(OVERRIDE), *args]
        # Grafana is out of the CI stack, but the file still insists on its password being set
        env = {**os.environ, "GRAFANA_ADMIN_PASSWORD": "unused-grafana-is-not-started"}
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env)
        if check and proc.returncode != 0:
            raise AssertionError(f"compose {' '.join(args)} exited {proc.returncode}\n"
                                 f"{proc.stdout}\n{proc.stderr}")
        return proc

    def container(self, service: str) -> str:
        ids = self.compose("ps", "--all", "--quiet", service).stdout.split()
        assert len(ids) == 1, (service, ids)
        return ids[0]

    def url(self, service: str, port: int) -> str:
        out = self.compose("port", service, str(port)).stdout.strip()
        host, _, number = out.rpartition(":")
        assert host == "127.0.0.1", out
        return f"http://{host}:{number}"

    def get_json(self, service: str, port: int, path: str, **params: str) -> Any:
        query = "?" + urllib.parse.urlencode(params) if params else ""
        status, body = http_get(f"{self.url(service, port)}{path}{query}")
        assert status == 200, (path, status, body[:500])
        return json.loads(body)


def _build_monitoring_images(base: str) -> None:
    root = TOOLS / "root"
    assert (root / "usr" / "bin" / "prometheus").exists(), f"{root}: run make tools first"
    for target, image in MONITORING_IMAGES.items():
        docker("build", "--quiet", "--file", str(MONITORING), "--build-arg", f"BASE={base}",
               "--target", target, "--tag", image, str(root), timeout=600,
               env={"DOCKER_BUILDKIT": "0"} if docker("buildx", "version", check=False).returncode else None)


def _drop_overfit_checkpoints(stack: Stack, images: Images, tmp: Path) -> None:
    """Write two heavy-tailed plain-model checkpoints into the stack's `checkpoints` volume,
    each renamed into place (the default rule needs two in a row; the SAC trainer's own
    networks never halt training under it)."""
    from tests.deploy.weights import write_model_checkpoint

    for step in (1_000_000, 1_000_001):
        path = write_model_checkpoint(tmp / f"overfit_{step}.pt", step=step, overfit=True, seed=step % 97)
        path.chmod(0o644)
    tmp.chmod(0o755)
    volume = f"{stack.project}_checkpoints"
    copy = ("import os, shutil\n"
            "for step in (1000000, 1000001):\n"
            "    shutil.copy(f'/in/overfit_{step}.pt', '/checkpoints/.overfit.tmp')\n"
            "    os.replace('/checkpoints/.overfit.tmp', f'/checkpoints/overfit_{step}.pt')\n")
    docker("run", "--rm", "--user", f"{IMAGE_UID}:{IMAGE_UID}", "--network", "none",
           "--volume", f"{volume}:/checkpoints", "--volume", f"{tmp}:/in:ro",
           "--entrypoint", "python", images.trainer, "-c", copy)


@pytest.fixture(scope="module")
def stack(images: Images, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    _build_monitoring_images(images.base)
    st = Stack(project=f"aw-ci-{secrets.token_hex(3)}", base=compose_command())
    try:
        st.compose("up", "--detach", "--no-build", "--pull", "never")
        trainer = st.container("trainer")
        wait_until(lambda: "saved generation_1.pt" in logs(trainer) or not state(trainer)["Running"],
                   timeout=300, interval=1, what="the trainer's first checkpoint")
        assert state(trainer)["Running"], logs(trainer)
        _drop_overfit_checkpoints(st, images, tmp_path_factory.mktemp("overfit"))
        yield st
    finally:
        st.compose("down", "--volumes", "--timeout", "10", check=False)


def test_every_service_runs_and_grafana_is_left_out(stack: Stack) -> None:
    services = set(stack.compose("ps", "--all", "--services").stdout.split())
    assert services == {"trainer", "alphawatch", "prometheus", "alertmanager"}
    for service in ("alphawatch", "prometheus", "alertmanager"):
        assert state(stack.container(service))["Running"], service


def test_trainer_halts_itself_on_the_stop_signal(stack: Stack) -> None:
    trainer = stack.container("trainer")
    final = wait_exited(trainer, timeout=600)
    output = logs(trainer)
    assert final["ExitCode"] == 0, output
    assert re.search(r"alphawatch stop signal at step [1-9]\d*", output), output
    daemon = stack.container("alphawatch")
    stop = json.loads(docker("exec", daemon, "cat", "/signals/alphawatch-stop.json").stdout)
    assert stop["stop"] is True and stop["run"] == RUN and stop["network"] == "model"
    assert stop["rule"] == "share_below" and stop["value"] >= stop["threshold"] == 0.5


def test_prometheus_scrapes_alphawatch(stack: Stack) -> None:
    def up() -> list[Any]:
        body = stack.get_json("prometheus", 9090, "/api/v1/query", query='up{job="alphawatch"}')
        return [r for r in body["data"]["result"] if r["value"][1] == "1"]

    (series,) = wait_until(up, timeout=120, interval=2, what='up{job="alphawatch"} == 1')
    assert series["metric"]["instance"] == "alphawatch:9841"
    query = f'alphawatch_stop_signal{{run="{RUN}"}} == 1'
    wait_until(lambda: stack.get_json("prometheus", 9090, "/api/v1/query", query=query)["data"]["result"],
               timeout=120, interval=2, what="the stop signal scraped by Prometheus")


def test_stop_signal_alert_reaches_alertmanager(stack: Stack) -> None:
    def alerts() -> list[dict[str, Any]]:
        found = stack.get_json("alertmanager", 9093, "/api/v2/alerts")
        return [a for a in found if a["labels"]["alertname"] == "AlphawatchStopSignalRaised"]

    (alert,) = wait_until(alerts, timeout=180, interval=2, what="AlphawatchStopSignalRaised in Alertmanager")
    assert alert["labels"]["run"] == RUN and alert["labels"]["severity"] == "warning"
    assert alert["status"]["state"] == "active"
    assert alert["receivers"][0]["name"] == "default"  # deploy/alertmanager/alertmanager.yml's route
    amtool = shutil.which("amtool", path=str(TOOLS / "bin")) or shutil.which("amtool")
    assert amtool, "amtool missing: make tools"
    proc = subprocess.run([amtool, "alert", "query", "--output=json",
                           f"--alertmanager.url={stack.url('alertmanager', 9093)}",
                           "alertname=AlphawatchStopSignalRaised"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert [a["labels"]["run"] for a in json.loads(proc.stdout)] == [RUN]


def test_compose_down_v_leaves_nothing_behind(stack: Stack) -> None:
    assert labelled("volume", stack.project), "the stack's named volumes should exist before down -v"
    stack.compose("down", "--volumes", "--timeout", "10")
    for kind in ("container", "volume", "network"):
        assert labelled(kind, stack.project) == [], kind
