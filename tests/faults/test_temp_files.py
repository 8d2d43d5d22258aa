"""Failure 2: a producer's temp file, paused longer than the quiet period before its rename,
was analyzed as a step-less checkpoint and then again under its final name, so one
over-threshold checkpoint counted twice and fired a patience-2 stop."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

from tests.factories import save_sac_checkpoint
from tests.faults.helpers import audit
from tests.service.conftest import QUIET, save_heavy_tailed_sac

pytestmark = [pytest.mark.faults, pytest.mark.e2e]


def _done(rows: list[dict[str, Any]], paths: set[str]) -> bool:
    return {r["path"] for r in rows if r["status"] == "done"} >= paths


def test_temp_files_never_count_twice_and_renamed_files_are_followed(
        tmp_path: Path, daemon_factory: Any, figure: Any) -> None:
    watch = tmp_path / "ckpts"
    watch.mkdir()
    staging = tmp_path / "staging"
    staging.mkdir()
    d = daemon_factory(watch, config={"stop": {"rule": "guide", "patience": 2}})  # mean alpha, any network
    d.wait_event("worker_ready", timeout=120)
    written: dict[str, float] = {}

    # 1. tempfile.mkstemp in the watched folder, a pause of 3 quiet periods, then the rename:
    #    the over-threshold weights must count once (patience 2: no stop)
    fd, tmp_name = tempfile.mkstemp(dir=watch)
    os.close(fd)
    save_heavy_tailed_sac(staging / "overfit.pt", step=300)
    Path(tmp_name).write_bytes((staging / "overfit.pt").read_bytes())
    time.sleep(3 * QUIET)
    final = watch / "model_300.pt"
    os.rename(tmp_name, final)
    written[str(final)] = time.time()
    d.wait_rows(lambda rows: _done(rows, {str(final)}), timeout=120)
    time.sleep(2 * QUIET)
    assert [r["path"] for r in d.rows()] == [str(final)] and not d.stop_file.exists()

    # 2. a temp name nobody could list ("incoming"), analyzed before its rename: the row
    #    follows the file to its final name, and the weights are not analyzed again
    incoming = watch / "incoming"
    save_sac_checkpoint(incoming, step=None, seed=4, hidden=32)
    d.wait_rows(lambda rows: _done(rows, {str(incoming)}), timeout=120)
    renamed = watch / "model_400.pt"
    os.rename(incoming, renamed)
    written[str(renamed)] = time.time()
    d.wait_event("checkpoint_renamed", timeout=30)

    # 3. a checkpoint renamed to an ignored name has left: it no longer counts
    away = watch / "model_500.pt"
    save_sac_checkpoint(away, step=500, seed=5, hidden=32)
    d.wait_rows(lambda rows: _done(rows, {str(away)}), timeout=120)
    os.rename(away, watch / "model_500.pt~")
    d.wait_event("checkpoint_moved_away", timeout=30)
    time.sleep(3 * QUIET)  # let any late event for the old names arrive

    rows = {r["path"]: r for r in d.rows()}
    assert set(rows) == {str(final), str(renamed), str(away)}, sorted(rows)
    assert not any(Path(e["path"]).name.startswith("tmp") for e in d.events("checkpoint_seen"))
    assert rows[str(renamed)]["status"] == "done" and rows[str(renamed)]["step"] == 400
    assert rows[str(away)]["status"] == "skipped" and rows[str(away)]["reason"] == "moved"
    assert len(d.events("checkpoint_analyzed")) == 3  # nothing analyzed twice
    assert not d.stop_file.exists() and not d.events("stop_written")
    assert d.metric("alphawatch_checkpoint_step") == 400
    found = audit(d.state, written)
    assert (found.lost, found.duplicated) == (0, 0)
    figure("2 temp files and renames", "mkstemp + pause + rename (patience 2); an unlisted temp name "
           "renamed after analysis; a rename to an ignored name", found)
