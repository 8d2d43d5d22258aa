"""Not yet tried: the whole daemon as a non-root user. Root ignores mode bits, so a daemon
tested as root never meets "permission denied"; here it runs as uid/gid 65534 (nobody)
with the virtualenv readable to it, a state and a signals folder it owns, and a checkpoint
it may not read."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.factories import save_sac_checkpoint
from tests.faults.helpers import audit, children
from tests.service.conftest import DaemonProcess

pytestmark = [pytest.mark.faults, pytest.mark.e2e]

NOBODY = 65534


@pytest.fixture
def shared_base() -> Iterator[Path]:
    """A folder every user can reach (pytest's own tmp_path is private to root)."""
    base = Path(tempfile.mkdtemp(prefix="alphawatch-nonroot-"))
    base.chmod(0o755)
    yield base
    shutil.rmtree(base, ignore_errors=True)


def _interpreter_for(base: Path) -> str:
    """This virtualenv's packages on an interpreter every user may run: the venv's own
    binary may sit in a private home (here /root/.pyenv), so point a venv config at the
    system's Python of the same minor version, with this venv's lib/."""
    system = Path(f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}")
    if not system.exists():
        pytest.skip(f"no {system} to run the daemon as another user")
    venv = base / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "pyvenv.cfg").write_text(f"home = {system.parent}\ninclude-system-site-packages = false\n")
    (venv / "lib").symlink_to(Path(sys.prefix) / "lib")
    (venv / "bin" / "python").symlink_to(system)
    return str(venv / "bin" / "python")


def _uid(pid: int) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as fh:
        return int(next(line for line in fh if line.startswith("Uid:")).split()[1])


def test_the_daemon_as_nobody(shared_base: Path, figure: Any) -> None:
    as_root = os.getuid() == 0
    watch = shared_base / "ckpts"
    watch.mkdir(mode=0o755)
    for owned in ("state", "signals", "home"):
        (shared_base / owned).mkdir()
        if as_root:
            os.chown(shared_base / owned, NOBODY, NOBODY)
    popen: dict[str, Any] = {"env": {**os.environ, "HOME": str(shared_base / "home")}}
    python = None
    if as_root:
        popen.update(user=NOBODY, group=NOBODY, extra_groups=[])
        python = _interpreter_for(shared_base)
    d = DaemonProcess(shared_base, watch, config={"state": {"max_attempts": 1}}, popen=popen, python=python)
    try:
        worker_pid = int(d.wait_event("worker_ready", timeout=180)["pid"])
        if as_root:
            assert _uid(d.proc.pid) == NOBODY and _uid(worker_pid) == NOBODY
            assert worker_pid in children(d.proc.pid)
        readable = save_sac_checkpoint(watch / "step_100.pt", step=100, hidden=32)
        readable.chmod(0o644)
        secret = save_sac_checkpoint(shared_base / "step_200.pt", step=200, hidden=32, seed=1)
        secret.chmod(0o600)  # owned by root (or by this user with no read bit for others)
        if not as_root:
            secret.chmod(0o000)
        secret.rename(watch / secret.name)
        written = {str(readable): time.time()}
        rows = d.wait_rows(lambda rows: sorted(r["status"] for r in rows) == ["done", "failed"], timeout=180)
        failed = next(r for r in rows if r["status"] == "failed")
        assert failed["reason"] == "unreadable" and "permission denied" in failed["message"], failed
        assert d.get("/readyz")[0] == 200
        assert d.terminate() == 0
    finally:
        if d.proc.poll() is None:
            d.kill9()
    found = audit(d.state, written)
    assert (found.lost, found.duplicated) == (0, 0)
    who = f"uid {NOBODY}" if as_root else f"uid {os.getuid()}"
    figure("non-root daemon", f"daemon and worker as {who}; a readable checkpoint and one it may not read "
           "(failed: unreadable, permission denied)", found)
