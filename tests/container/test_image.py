"""The built image, run the way docs/deployment.md tells users to run it.

One daemon container (`docker run` with `--read-only --tmpfs /tmp --cap-drop ALL
--security-opt no-new-privileges`, the image's own user and HEALTHCHECK) watches a host folder
bind-mounted read-only; the stop signal goes to a named volume. Then, in order:

0. torch in the image is the CPU build;
1. the HEALTHCHECK turns the container `healthy` (`docker inspect`);
2. it runs as uid/gid 10001 with no capabilities, no-new-privileges and a read-only root,
   as configured (`docker inspect`) and in effect (/proc/1/status, writes refused);
3. the checkpoint in the read-only bind mount is analyzed;
4. /metrics answers on the published host port, and `promtool check metrics` accepts it;
5. the trainer image trains (SAC, writing into the same folder: its actor and critics never halt
   training under the default rule, as the study found they must not), the test drops two plain
   model checkpoints with heavy-tailed weights (tests/deploy/weights.py, every layer's alpha ~1.5),
   the daemon writes the stop file into the shared volume (read-only for the trainer) on the
   second (patience 2) and the trainer halts itself;
6. `docker restart` re-analyzes nothing (the ledger in the /state volume survives);
7. `docker stop` (SIGTERM) ends it with exit 0 within the grace period.

The tests run in file order and share the containers; each one asserts on the real container.
"""

from __future__ import annotations

import json
import re
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.container.conftest import Images
from tests.container.dockercli import (
    IMAGE_UID,
    TOOLS,
    docker,
    health,
    host_port,
    http_get,
    inspect,
    json_events,
    logs,
    state,
    wait_exited,
    wait_healthy,
)
from tests.support import wait_until

pytestmark = [pytest.mark.container, pytest.mark.e2e, pytest.mark.timeout(3600)]

RUN = "training"  # config/examples/docker.yaml, the image's config
STOP_FILE = "/signals/alphawatch-stop.json"
GRACE_SECONDS = 10
# docs/deployment.md's `docker run` flags
HARDENING = ["--read-only", "--tmpfs", "/tmp", "--cap-drop", "ALL",
             "--security-opt", "no-new-privileges:true"]
DONE_RE = re.compile(r'^alphawatch_checkpoints\{run="training",status="done"\} (\S+)$', re.M)


@dataclass
class Deployment:
    daemon: str
    trainer: str
    signals: str
    state_volume: str
    checkpoints: Path
    trainer_exit: dict[str, object] = field(default_factory=dict)

    def metrics_url(self) -> str:
        host, port = host_port(self.daemon, 9841)
        return f"http://{host}:{port}"

    def metrics(self) -> str:
        status, body = http_get(f"{self.metrics_url()}/metrics")
        return body if status == 200 else ""

    def done(self) -> int:
        match = DONE_RE.search(self.metrics())
        return int(float(match.group(1))) if match else 0


def _readable_checkpoint(path: Path, step: int, overfit: bool = False) -> Path:
    """A real checkpoint, world-readable (the daemon runs as uid 10001, the test as root): a SAC
    one, or with `overfit` a plain model's with every layer heavy-tailed."""
    from tests.deploy.weights import write_model_checkpoint
    from tests.factories import save_sac_checkpoint

    if overfit:
        write_model_checkpoint(path, step=step, overfit=True, seed=step % 97)
    else:
        save_sac_checkpoint(path, step=step, seed=1)
    path.chmod(0o644)
    return path


@pytest.fixture(scope="module")
def deployment(images: Images, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    tag = f"aw-ct-{secrets.token_hex(3)}"
    ckpts = tmp_path_factory.mktemp("container") / "checkpoints"
    ckpts.mkdir()
    # the trainer (uid 10001) writes here too; the daemon gets it read-only
    shutil.chown(ckpts, IMAGE_UID, IMAGE_UID)
    ckpts.chmod(0o755)
    _readable_checkpoint(ckpts / "generation_100.pt", step=100)

    dep = Deployment(daemon=f"{tag}-daemon", trainer=f"{tag}-trainer", signals=f"{tag}-signals",
                     state_volume=f"{tag}-state", checkpoints=ckpts)
    for volume in (dep.signals, dep.state_volume):
        docker("volume", "create", volume)
    try:
        docker("run", "--detach", "--name", dep.daemon, *HARDENING,
               # the image's HEALTHCHECK command, polled faster than its 30 s so the test is quick
               "--health-interval", "2s", "--health-start-period", "120s",
               "--publish", "127.0.0.1::9841",
               "--volume", f"{ckpts}:/checkpoints:ro",
               "--volume", f"{dep.signals}:/signals",
               "--volume", f"{dep.state_volume}:/state",
               images.daemon)
        yield dep
    finally:
        for name in (dep.trainer, dep.daemon):
            docker("rm", "--force", "--volumes", name, check=False)
        for volume in (dep.signals, dep.state_volume):
            docker("volume", "rm", "--force", volume, check=False)


def test_torch_is_the_cpu_build(images: Images) -> None:
    code = "import torch; print(torch.__version__, torch.version.cuda)"
    out = docker("run", "--rm", "--entrypoint", "python", images.daemon, "-c", code).stdout.split()
    assert out[1] == "None" and out[0].endswith("+cpu"), out


def test_healthcheck_turns_healthy(deployment: Deployment) -> None:
    wait_healthy(deployment.daemon, timeout=180)
    assert health(deployment.daemon) == "healthy"
    last = state(deployment.daemon)["Health"]["Log"][-1]
    assert last["ExitCode"] == 0


def test_hardening_as_configured_and_in_effect(deployment: Deployment, images: Images) -> None:
    host_config = inspect(deployment.daemon, "{{json .HostConfig}}")
    assert host_config["ReadonlyRootfs"] is True
    assert host_config["CapDrop"] == ["ALL"]
    assert "no-new-privileges:true" in host_config["SecurityOpt"]
    assert inspect(images.daemon, "{{.Config.User}}") == f"{IMAGE_UID}:{IMAGE_UID}"
    mounts = {m["Destination"]: m for m in inspect(deployment.daemon, "{{json .Mounts}}")}
    assert mounts["/checkpoints"]["RW"] is False
    assert mounts["/signals"]["RW"] is True and mounts["/state"]["RW"] is True

    # in effect, seen from inside: the daemon process (pid 1) and what it may write
    status = docker("exec", deployment.daemon, "cat", "/proc/1/status").stdout
    fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
    assert fields["Uid"].split() == [str(IMAGE_UID)] * 4
    assert fields["Gid"].split() == [str(IMAGE_UID)] * 4
    assert int(fields["CapEff"], 16) == 0 and int(fields["CapBnd"], 16) == 0
    assert fields["NoNewPrivs"].strip() == "1"
    # places the user may write by their mode bits, so only a read-only mount can refuse:
    # /var/tmp (mode 1777) on the root filesystem, and the checkpoint folder (owned by 10001)
    for path in ("/var/tmp/probe", "/checkpoints/probe.pt"):
        proc = docker("exec", deployment.daemon, "python", "-c", f"open({path!r}, 'a')", check=False)
        assert proc.returncode != 0 and "Read-only file system" in proc.stderr, (path, proc.stderr)
    for path in ("/state/probe", "/signals/.probe", "/tmp/probe"):
        docker("exec", deployment.daemon, "python", "-c",
               f"import os; open({path!r}, 'w').close(); os.remove({path!r})")


def test_checkpoint_in_read_only_bind_mount_is_analyzed(deployment: Deployment) -> None:
    wait_until(lambda: deployment.done() >= 1, timeout=240, interval=1, what="generation_100.pt analyzed")
    events = [e for e in json_events(logs(deployment.daemon)) if e.get("event") == "checkpoint_analyzed"]
    assert [Path(e["path"]).name for e in events] == ["generation_100.pt"]
    assert events[0]["run"] == RUN


def test_metrics_on_the_published_host_port(deployment: Deployment) -> None:
    host, port = host_port(deployment.daemon, 9841)
    assert host == "127.0.0.1" and port != 9841  # a port Docker picked and published
    status, body = http_get(f"http://{host}:{port}/metrics")
    assert status == 200
    assert re.search(r'^alphawatch_alpha\{network="actor",run="training"\} \d', body, re.M), body[:2000]
    assert http_get(f"http://{host}:{port}/readyz")[0] == 200
    promtool = shutil.which("promtool", path=str(TOOLS / "bin")) or shutil.which("promtool")
    assert promtool, "promtool missing: make tools"
    proc = subprocess.run([promtool, "check", "metrics"], input=body.encode(), capture_output=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_trainer_halts_itself_on_the_stop_file_in_the_shared_volume(
    deployment: Deployment, images: Images
) -> None:
    dep = deployment
    docker("run", "--detach", "--name", dep.trainer, *HARDENING,
           "--volume", f"{dep.checkpoints}:/checkpoints",
           "--volume", f"{dep.signals}:/signals:ro",
           images.trainer,
           "--checkpoint-dir", "/checkpoints", "--stop-file", STOP_FILE,
           "--save-every", "500", "--learning-starts", "100", "--hidden", "64", "--max-steps", "1000000")
    # training runs and its checkpoints reach the daemon through the shared folder
    wait_until(lambda: "saved generation_1.pt" in logs(dep.trainer) or not state(dep.trainer)["Running"],
               timeout=300, interval=1, what="the trainer's first checkpoint")
    assert state(dep.trainer)["Running"], logs(dep.trainer)
    wait_until(lambda: dep.done() >= 2, timeout=240, interval=1, what="the trainer's checkpoint analyzed")
    assert (dep.checkpoints / "generation_1.pt").stat().st_uid == IMAGE_UID  # the trainer wrote it

    # two overfit checkpoints arrive (real heavy-tailed weights, every layer's alpha ~1.5 < 2.0)
    for step in (1_000_000, 1_000_001):
        _readable_checkpoint(dep.checkpoints / f"overfit_{step}.pt", step=step, overfit=True)
    final = wait_exited(dep.trainer, timeout=300)
    output = logs(dep.trainer)
    assert final["ExitCode"] == 0, output
    halted = re.search(r"alphawatch stop signal at step (\d+)", output)
    assert halted and int(halted.group(1)) > 0, output
    assert "finished" not in output  # it stopped because of the signal, not the step budget

    stop = json.loads(docker("exec", dep.daemon, "cat", STOP_FILE).stdout)
    assert stop["stop"] is True and stop["run"] == RUN
    assert stop["rule"] == "share_below" and stop["network"] == "model"
    assert stop["value"] >= stop["threshold"] == 0.5
    assert stop["checkpoint"] == "/checkpoints/overfit_1000001.pt"
    dep.trainer_exit = final


def test_restart_reanalyzes_nothing(deployment: Deployment) -> None:
    dep = deployment
    # first every checkpoint in the folder is done (the trainer may have saved one more just
    # before it halted): what the restarted daemon analyzes after this would be a re-analysis
    files = {f"/checkpoints/{p.name}" for p in dep.checkpoints.glob("*.pt")}
    assert len(files) >= 4  # generation_100, the trainer's, the two overfit ones

    def analyzed_paths() -> set[str]:
        return {e["path"] for e in json_events(logs(dep.daemon)) if e.get("event") == "checkpoint_analyzed"}

    def settled() -> bool:
        busy = re.search(r'^alphawatch_checkpoints\{run="training",status="(pending|analyzing)"\} [1-9]',
                         dep.metrics(), re.M)
        return not busy and analyzed_paths() == files and dep.done() == len(files)

    wait_until(settled, timeout=180, interval=1, what="every checkpoint analyzed before the restart")
    done_before = dep.done()
    restarted_at = datetime.now(UTC).isoformat()  # the engine shares this machine's clock
    docker("restart", "--time", str(GRACE_SECONDS), dep.daemon, timeout=GRACE_SECONDS + 60)
    wait_healthy(dep.daemon, timeout=180)
    wait_until(lambda: http_get(f"{dep.metrics_url()}/readyz")[0] == 200, timeout=60, what="ready again")
    time.sleep(5)  # the start-up scan has had time to find every file and queue what it would redo
    after = json_events(logs(dep.daemon, since=restarted_at))
    assert any(e.get("event") == "metrics_listening" for e in after), "no log lines from the restarted daemon"
    again = [(e["path"], e.get("step")) for e in after if e.get("event") == "checkpoint_analyzed"]
    assert again == [], f"re-analyzed after the restart: {again}; files {sorted(files)}"
    metrics = dep.metrics()
    assert dep.done() == done_before
    assert not re.search(r'^alphawatch_checkpoints\{run="training",status="(pending|analyzing)"\} [1-9]',
                         metrics, re.M)


def test_sigterm_exits_0_within_the_grace_period(deployment: Deployment) -> None:
    dep = deployment
    started = time.monotonic()
    docker("stop", "--time", str(GRACE_SECONDS), dep.daemon, timeout=GRACE_SECONDS + 60)
    elapsed = time.monotonic() - started
    final = state(dep.daemon)
    output = logs(dep.daemon)
    assert final["ExitCode"] == 0 and final["OOMKilled"] is False, output[-3000:]
    assert elapsed < GRACE_SECONDS, f"took {elapsed:.1f} s: docker had to SIGKILL"
    assert any(e.get("event") == "daemon_stopped" for e in json_events(output))
    assert "Traceback" not in output
