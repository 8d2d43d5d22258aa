"""The container's entrypoint, run here as the image's non-root user (no Docker engine needed).

Reproduces what `docker run alphawatch` does, from the Dockerfile itself: the ENTRYPOINT +
CMD argv, the image's ENV (its final stage and the stages that one is built from), WORKDIR
/state, uid/gid 10001 (via `setpriv`, since root ignores mode bits and would hide permission
bugs), a read-only checkpoint folder (chmod a-w, as the `:ro` mount), writable state and
signals folders owned by that uid, and the config from config/examples/docker.yaml with its
/checkpoints, /state, /signals paths moved into a temp folder. Then the HEALTHCHECK command
from the Dockerfile must pass, the daemon must analyze the checkpoints and write the stop
file, SIGTERM (what `docker stop` sends) must end it with exit 0, and nothing outside state/
and signals/ may have been written (tmp/ stands for the container's tmpfs /tmp).

One difference from the image is forced by this machine: the project venv's interpreter may
live where the non-root user cannot reach it (pyenv under /root, mode 0700). Then the test
builds what the image has, a venv at opt/venv on a system Python of the same minor version,
that loads the project venv's site-packages, with the same `alphawatch` console script pip
writes. Without that the daemon starts (setpriv still holds root's capabilities while it
execs) but cannot spawn its analysis worker.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import sysconfig
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.helpers import (
    DOCKER_CONFIG,
    DOCKERFILE,
    exec_form,
    healthcheck_command,
    stage_lineage,
)
from tests.deploy.weights import write_model_checkpoint
from tests.support import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

# the default target with its parent stages: USER, ENV and WORKDIR as the image has them
FINAL = stage_lineage(DOCKERFILE.read_text())
VENV_BIN = Path(sys.executable).parent
MOUNTS = ("/checkpoints", "/state", "/signals")


def _image_user() -> tuple[int, int]:
    user = [args for ins, args in FINAL if ins == "USER"][-1]
    uid, _, gid = user.partition(":")
    return int(uid), int(gid or uid)


def _reachable_by_others(path: Path) -> bool:
    real = path.resolve()
    return all(p.stat().st_mode & stat.S_IXOTH for p in [real, *real.parents])


def _venv_bin_for_user(root: Path) -> Path:
    """This venv's bin, or (if its interpreter is out of the user's reach) an /opt/venv-like shim."""
    if os.geteuid() != 0 or _reachable_by_others(Path(sys.executable)):
        return VENV_BIN
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    system_python = next((Path(d) / version for d in ("/usr/local/bin", "/usr/bin")
                          if (Path(d) / version).exists() and _reachable_by_others(Path(d) / version)), None)
    if system_python is None:
        pytest.fail(f"{sys.executable} is not reachable by a non-root user and there is no system {version}")
    venv = root / "opt" / "venv"
    subprocess.run([str(system_python), "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    site = Path(sysconfig.get_path("purelib", vars={"base": str(venv), "platbase": str(venv)}))
    project_site = sysconfig.get_path("purelib")
    (site / "alphawatch-project-venv.pth").write_text(f"import site; site.addsitedir({project_site!r})\n")
    script = venv / "bin" / "alphawatch"
    script.write_text(f"#!{venv}/bin/python\nimport sys\nfrom alphawatch.cli import main\nsys.exit(main())\n")
    script.chmod(0o755)
    return venv / "bin"


def _image_env(root: Path, venv_bin: Path) -> dict[str, str]:
    """The image's ENV, with /opt/venv mapped to this venv and /tmp to root/tmp."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"}
    for ins, args in FINAL:
        if ins != "ENV":
            continue
        for word in shlex.split(args):
            key, _, value = word.partition("=")
            value = value.replace("$PATH", env["PATH"]).replace("/opt/venv/bin", str(venv_bin))
            env[key] = value.replace("/tmp/", f"{root}/tmp/")
    env["TMPDIR"] = str(root / "tmp")
    # the image listens on every interface inside its own network namespace; here that would be
    # every interface of this machine, so keep the config's loopback address
    env.pop("ALPHAWATCH_METRICS_HOST", None)
    return env


def _as_user(argv: list[str]) -> list[str]:
    """Prefix that drops to the image's uid/gid when running as root (we are already non-root otherwise)."""
    if os.geteuid() != 0:
        return argv
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.fail("setpriv (util-linux) is needed to run the entrypoint as a non-root user")
    uid, gid = _image_user()
    return [setpriv, f"--reuid={uid}", f"--regid={gid}", "--clear-groups", *argv]


def _rewrite(value: Any, root: Path) -> Any:
    """Move the container paths (/checkpoints, /state, /signals) into root."""
    if isinstance(value, dict):
        return {k: _rewrite(v, root) for k, v in value.items()}
    if isinstance(value, list):
        return [_rewrite(v, root) for v in value]
    if isinstance(value, str):
        for mount in MOUNTS:
            if value == mount or value.startswith(mount + "/"):
                return str(root) + value
    return value


def _snapshot(root: Path) -> dict[str, tuple[int, int, int]]:
    out = {}
    for path in root.rglob("*"):
        st = path.lstat()
        out[str(path.relative_to(root))] = (st.st_mtime_ns, st.st_size, st.st_mode)
    return out


@pytest.fixture
def container_root() -> Iterator[Path]:
    # not pytest's tmp_path: /tmp/pytest-of-root is 0700 and the non-root user could not enter
    root = Path(tempfile.mkdtemp(prefix="alphawatch-nonroot-"))
    root.chmod(0o755)
    try:
        yield root
    finally:
        for path in [root, *root.rglob("*")]:
            if path.is_dir() and not path.is_symlink():
                path.chmod(0o755)
        shutil.rmtree(root)


def test_entrypoint_as_non_root_with_read_only_checkpoints(container_root: Path) -> None:
    from tests.factories import save_sac_checkpoint

    root = container_root
    uid, gid = _image_user()
    assert uid != 0

    # the image's filesystem: /checkpoints read-only, /state and /signals owned by the user
    ckpts, state, signals, tmp = root / "checkpoints", root / "state", root / "signals", root / "tmp"
    save_sac_checkpoint(ckpts / "generation_100.pt", step=100, seed=1)
    # two over-fitted plain-model checkpoints in a row: what the default stop rule fires on
    write_model_checkpoint(ckpts / "generation_200.pt", step=200, overfit=True, seed=2)
    write_model_checkpoint(ckpts / "generation_300.pt", step=300, overfit=True, seed=3)
    for path in ckpts.iterdir():
        path.chmod(0o444)
    ckpts.chmod(0o555)  # chmod a-w, like the :ro mount
    for folder in (state, signals, tmp):
        folder.mkdir()
        if os.geteuid() == 0:
            os.chown(folder, uid, gid)
    tmp.chmod(0o1777)

    port = free_port()
    config = yaml.safe_load(DOCKER_CONFIG.read_text())
    config = _rewrite(config, root)
    config["metrics"].update({"host": "127.0.0.1", "port": port})
    etc = root / "etc" / "alphawatch"
    etc.mkdir(parents=True)
    (etc / "config.yaml").write_text(yaml.safe_dump(config))
    (etc / "config.yaml").chmod(0o444)

    entrypoint = exec_form([a for ins, a in FINAL if ins == "ENTRYPOINT"][-1])
    cmd = exec_form([a for ins, a in FINAL if ins == "CMD"][-1])
    cmd = [str(etc / "config.yaml") if a == "/etc/alphawatch/config.yaml" else a for a in cmd]
    venv_bin = _venv_bin_for_user(root)
    argv = [str(venv_bin / entrypoint[0]), *entrypoint[1:], *cmd]
    workdir = [a for ins, a in FINAL if ins == "WORKDIR"][-1]
    env = _image_env(root, venv_bin)

    before = _snapshot(root)
    log = root.parent / f"{root.name}.log"
    with log.open("wb") as fh:
        proc = subprocess.Popen(_as_user(argv), cwd=_rewrite(workdir, root), env=env,
                                stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    health_argv = healthcheck_command(DOCKERFILE.read_text())
    health_argv = [str(venv_bin / health_argv[0]),
                   *[a.replace(":9841/", f":{port}/") for a in health_argv[1:]]]
    try:
        # the HEALTHCHECK command, as the same user
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, log.read_text()
            check = subprocess.run(_as_user(health_argv), env=env, capture_output=True, timeout=10)
            if check.returncode == 0:
                break
            assert time.monotonic() < deadline, f"HEALTHCHECK failing: {check.stderr!r}\n{log.read_text()}"
            time.sleep(1)

        # who the daemon runs as (setpriv execs it in place, so the pid is the daemon's)
        if os.geteuid() == 0:
            status = Path(f"/proc/{proc.pid}/status").read_text()
            assert re.search(rf"^Uid:\s+{uid}\s+{uid}\s+{uid}\s+{uid}$", status, re.M), status
            assert re.search(rf"^Gid:\s+{gid}\s+{gid}\s+{gid}\s+{gid}$", status, re.M), status

        # every checkpoint analyzed, the overfit ones raise the stop signal
        stop_file = Path(config["stop"]["file"])
        deadline = time.monotonic() + 90
        metrics = ""
        while not (stop_file.exists() and 'status="done"} 3.0' in metrics):
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, f"not analyzed in time\n{metrics}\n{log.read_text()}"
            time.sleep(1)
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
                metrics = resp.read().decode()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as resp:
            assert resp.status == 200
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)  # what `docker stop` sends
        try:
            code = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = proc.wait(timeout=10)
    output = log.read_text(errors="replace")
    log.unlink()
    assert code == 0, f"exit {code} on SIGTERM\n{output}"
    assert "Traceback" not in output

    # the healthcheck notices the daemon is gone
    assert subprocess.run(_as_user(health_argv), env=env, capture_output=True, timeout=10).returncode != 0

    # it wrote only to state/ and signals/ (and tmp/, the container's tmpfs)
    after = _snapshot(root)
    changed = {p for p in after if before.get(p) != after[p]} | (set(before) - set(after))
    outside = {p for p in changed if not p.startswith(("state", "signals", "tmp"))}
    assert outside == set(), outside
    assert any(p.startswith("state/") for p in changed)
    assert stop_file.exists()
    if os.geteuid() == 0:
        for written in [stop_file, *state.iterdir()]:
            st = written.stat()
            assert (st.st_uid, st.st_gid) == (uid, gid), written
    assert stat.S_IMODE(ckpts.stat().st_mode) == 0o555
