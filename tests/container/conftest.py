"""The container suite's engine and images: real dockerd, real `make image` build.

- `engine`: a Docker engine that answers. When none does, deploy/image/engine.sh starts dockerd
  (root and Debian's docker.io needed) and this fixture stops it again at the end of the
  session. Where no engine can be had the suite skips, naming why; with
  ALPHAWATCH_REQUIRE_CONTAINERS=1 (CI) it fails instead, so CI can't go green without it.
- `images`: deploy/image/build.sh, exactly what `make image` runs (local base image and local
  CPU torch wheel where Docker Hub and the CPU index can't be reached). A failed build fails.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from alphawatch import __version__

from tests.container.dockercli import (
    BUILD_SCRIPT,
    ENGINE_SCRIPT,
    REQUIRE_ENV,
    engine_answers,
    inspect,
)


@dataclass(frozen=True)
class Images:
    daemon: str
    trainer: str
    base: str  # the base image the build used (python:3.11-slim, or the local stand-in)
    build_seconds: float


def _stop_dockerd(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.5)


@pytest.fixture(scope="session")
def engine() -> Iterator[None]:
    started_pid: int | None = None
    if not engine_answers():
        proc = subprocess.run([str(ENGINE_SCRIPT)], capture_output=True, text=True, timeout=180)
        if proc.returncode != 0:
            reason = f"no Docker engine for the container suite: {proc.stderr.strip() or proc.stdout.strip()}"
            if os.environ.get(REQUIRE_ENV) == "1":
                pytest.fail(f"{reason} ({REQUIRE_ENV}=1: the container suite must run here)")
            pytest.skip(reason)
        match = re.search(r"started dockerd \(pid (\d+)", proc.stdout)
        started_pid = int(match.group(1)) if match else None
    yield
    if started_pid is not None:
        _stop_dockerd(started_pid)


@pytest.fixture(scope="session")
def images(engine: None, tmp_path_factory: pytest.TempPathFactory) -> Images:
    log = tmp_path_factory.mktemp("image-build") / "build.log"
    started = time.monotonic()
    proc = subprocess.run([str(BUILD_SCRIPT)], capture_output=True, text=True, timeout=3000,
                          env={**os.environ, "BUILD_LOG": str(log)})
    assert proc.returncode == 0, f"make image failed\n{proc.stdout}\n{proc.stderr}"
    daemon = f"alphawatch:{__version__}"
    base = inspect(daemon, '{{index .Config.Labels "org.opencontainers.image.base.name"}}')
    return Images(daemon=daemon, trainer=f"alphawatch-trainer:{__version__}", base=base,
                  build_seconds=time.monotonic() - started)
