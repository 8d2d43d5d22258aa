"""The fault suite: each test records one row of the Reliability table, printed at the end.

`make faults` runs this folder with ALPHAWATCH_FAULTS=full (the long variants: 2,000-
checkpoint burst, 2 h soak, 100-cycle crash loop) and writes the rows as JSON to
$ALPHAWATCH_FAULTS_REPORT; CI (`make test`) runs the compressed variants, which assert the
same properties on fewer checkpoints, and prints the same table.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

import pytest

from tests.faults.helpers import Audit
from tests.service.conftest import daemon_factory  # noqa: F401 (a fixture, shared with the service tests)

_FIGURES = pytest.StashKey[list[dict[str, Any]]]()
COLUMNS = ("case", "what was done", "count", "lost", "duplicated", "worst latency")


@pytest.fixture
def figure(request: pytest.FixtureRequest) -> Callable[..., None]:
    """figure(case, done, audit) or figure(case, done, count=, lost=, duplicated=, worst_latency_s=)."""

    def record(case: str, done: str, found: Audit | None = None, **given: Any) -> None:
        values = {"count": 0, "lost": 0, "duplicated": 0, "worst_latency_s": None}
        if found is not None:
            values.update(count=found.count, lost=found.lost, duplicated=found.duplicated,
                          worst_latency_s=found.worst_latency_s)
        values.update(given)
        latency = values["worst_latency_s"]
        values["worst_latency_s"] = None if latency is None else round(float(latency), 2)
        request.config.stash.setdefault(_FIGURES, []).append({"case": case, "done": done, **values})

    return record


def _cell(row: dict[str, Any]) -> list[str]:
    latency = row["worst_latency_s"]
    return [row["case"], row["done"], str(row["count"]), str(row["lost"]), str(row["duplicated"]),
            "–" if latency is None else f"{latency:.2f} s"]


def _order(row: dict[str, Any]) -> tuple[int, str]:
    """Issue 10's failures by number (1, 3a, 10 ...), then the cases not tried before."""
    number = row["case"].split(" ", 1)[0].rstrip("abc")
    return (int(number) if number.isdigit() else 100, row["case"])


def table(rows: list[dict[str, Any]]) -> str:
    """The Reliability table as Markdown (what the README shows)."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(_cell(row)) + " |" for row in sorted(rows, key=_order)]
    return "\n".join(lines)


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    rows = config.stash.get(_FIGURES, [])
    if not rows:
        return
    terminalreporter.section("alphawatch reliability figures")
    terminalreporter.write_line(table(rows))
    target = os.environ.get("ALPHAWATCH_FAULTS_REPORT")
    if target:
        with open(target, "w", encoding="utf-8") as fh:
            json.dump(rows, fh, indent=1)


@pytest.fixture
def small_tmpfs() -> Any:
    """mount_tmpfs(folder, size) -> a real tmpfs of that size mounted at `folder` (a real full
    disk, refilled and freed at will); unmounted at teardown. Skipped where mounting is not
    allowed (not root, no CAP_SYS_ADMIN)."""
    import subprocess
    from pathlib import Path

    mounted: list[Path] = []

    def mount(folder: Path, size: str = "4m") -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0777", "tmpfs", str(folder)],
                              capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip()}): no real full disk to test")
        mounted.append(folder)
        return folder

    yield mount
    for folder in mounted:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)


@pytest.fixture
def venv_clone(tmp_path: Any) -> Any:
    """An interpreter path for this virtualenv that a test may break and restore: a folder
    with the venv's pyvenv.cfg and lib/ and its own bin/python link to the real binary."""
    import shutil
    import sys
    from pathlib import Path

    real = Path(sys.executable)
    venv = Path(sys.prefix)
    clone = tmp_path / "pyclone"
    (clone / "bin").mkdir(parents=True)
    shutil.copy(venv / "pyvenv.cfg", clone / "pyvenv.cfg")
    (clone / "lib").symlink_to(venv / "lib")
    python = clone / "bin" / "python"
    python.symlink_to(real.resolve())
    return python
