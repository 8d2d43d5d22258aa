"""The real Docker CLI, driven from tests: one call shape and failures that show what happened.

Plain functions (no fixtures) over `docker` and `docker compose`; the engine and the images
come from tests/container/conftest.py. Every wait polls real state (`docker inspect`, the
published port) with a deadline instead of sleeping a fixed time.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from tests.support import wait_until

REPO = Path(__file__).resolve().parents[2]
ENGINE_SCRIPT = REPO / "deploy" / "image" / "engine.sh"
BUILD_SCRIPT = REPO / "deploy" / "image" / "build.sh"
# Set to 1 where the container suite must run (CI): a missing engine then fails instead of skipping.
REQUIRE_ENV = "ALPHAWATCH_REQUIRE_CONTAINERS"
# The project-local tools folder (deploy/tools/install.sh; `make test` passes its path).
TOOLS = Path(os.environ.get("ALPHAWATCH_TOOLS", REPO / ".tools"))
# The uid/gid the images run as (Dockerfile, stage `runtime`).
IMAGE_UID = 10001


def docker(*args: str, check: bool = True, timeout: float = 120,
           env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run `docker ARGS`; with check, a non-zero exit fails with the command's output."""
    proc = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout,
                          env=None if env is None else {**os.environ, **env})
    if check and proc.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} exited {proc.returncode}\n"
                             f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def engine_answers() -> bool:
    if shutil.which("docker") is None:
        return False
    return subprocess.run(["docker", "info"], capture_output=True, timeout=60).returncode == 0


def compose_command() -> list[str]:
    """`docker compose` when the plugin is installed, else the tools folder's docker-compose."""
    if subprocess.run(["docker", "compose", "version"], capture_output=True, timeout=60).returncode == 0:
        return ["docker", "compose"]
    standalone = shutil.which("docker-compose", path=str(TOOLS / "bin")) or shutil.which("docker-compose")
    if standalone is None:
        raise AssertionError(f"no `docker compose` plugin and no docker-compose in {TOOLS}/bin "
                             "(make tools fetches it)")
    return [standalone]


def inspect(name: str, template: str = "{{json .}}") -> Any:
    """`docker inspect` of a container, image or volume: the template's output, JSON-decoded."""
    out = docker("inspect", "--format", template, name).stdout.strip()
    return json.loads(out) if template.startswith("{{json") else out


def state(name: str) -> dict[str, Any]:
    return inspect(name, "{{json .State}}")


def health(name: str) -> str | None:
    health_state = state(name).get("Health")
    return health_state["Status"] if health_state else None


def logs(name: str, since: str | None = None) -> str:
    args = ["logs", *(["--since", since] if since else []), name]
    proc = docker(*args)
    return proc.stdout + proc.stderr


def json_events(text: str) -> list[dict[str, Any]]:
    """The JSON log lines (the daemon's `logging.format: json`) of a container's output."""
    events = []
    for line in text.splitlines():
        if line.startswith("{"):
            try:
                events.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return events


def host_port(name: str, port: int) -> tuple[str, int]:
    """Where a container's published port is on the host (`docker port`)."""
    out = docker("port", name, f"{port}/tcp").stdout.split()[0]
    host, _, number = out.rpartition(":")
    return host, int(number)


def http_get(url: str, timeout: float = 5.0) -> tuple[int, str]:
    """(status, body); connection errors come back as status 0 so waits can poll."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")
    except (OSError, ValueError):
        return 0, ""


def wait_healthy(name: str, timeout: float) -> None:
    """Until the container's HEALTHCHECK reports healthy; fail early if it exits or turns unhealthy."""
    def check() -> bool:
        st = state(name)
        assert st["Running"], f"{name} exited ({st['ExitCode']}) before turning healthy\n{logs(name)[-4000:]}"
        status = st.get("Health", {}).get("Status")
        assert status != "unhealthy", f"{name} unhealthy: {st['Health']['Log'][-1:]}\n{logs(name)[-4000:]}"
        return status == "healthy"

    wait_until(check, timeout=timeout, interval=0.5, what=f"{name} to turn healthy")


def wait_exited(name: str, timeout: float) -> dict[str, Any]:
    """Until the container has stopped; its final State."""
    wait_until(lambda: not state(name)["Running"], timeout=timeout, interval=0.5, what=f"{name} to exit")
    return state(name)


def labelled(kind: str, project: str) -> list[str]:
    """Containers, volumes or networks that carry a compose project's label (any state)."""
    label = f"label=com.docker.compose.project={project}"
    if kind == "container":
        out = docker("ps", "--all", "--quiet", "--filter", label).stdout
    else:
        out = docker(kind, "ls", "--quiet", "--filter", label).stdout
    return out.split()
