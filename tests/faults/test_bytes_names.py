"""Failure 6: a file name that is not valid UTF-8 (`bad\\xff\\xfe.pt`) was never analyzed and
its warning repeated forever (43 lines in 95 s). Linux names are bytes: the daemon must
carry them through (surrogateescape) to the worker, the ledger and the logs."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

from tests.factories import save_sac_checkpoint
from tests.faults.helpers import audit
from tests.service.conftest import QUIET

pytestmark = [pytest.mark.faults, pytest.mark.e2e]


def test_a_name_that_is_not_utf8_is_analyzed_once(tmp_path: Path, daemon_factory: Any, figure: Any) -> None:
    watch = tmp_path / "ckpts"
    watch.mkdir()
    d = daemon_factory(watch)
    d.wait_event("worker_ready", timeout=120)
    staged = save_sac_checkpoint(tmp_path / "staged.pt", step=100, hidden=32)
    raw = os.fsencode(watch) + b"/bad\xff\xfe_step_100.pt"
    os.rename(os.fsencode(staged), raw)
    name = os.fsdecode(raw)  # what Python sees: 'bad\udcff\udcfe_step_100.pt'
    written = {name: time.time()}
    d.wait_rows(lambda rows: [r["status"] for r in rows] == ["done"], timeout=120)
    time.sleep(6 * QUIET)  # nothing more is said about it
    analyzed = d.events("checkpoint_analyzed")
    assert [e["path"] for e in analyzed] == [name] and analyzed[0]["step"] == 100
    assert not d.events("watch_emit_failed") and not d.events("watch_error")
    assert len(d.events("checkpoint_seen")) == 1
    assert d.metric("alphawatch_checkpoint_step") == 100
    found = audit(d.state, written)
    assert (found.lost, found.duplicated) == (0, 0)
    figure("6 file name not UTF-8", "torch.save renamed to b'bad\\xff\\xfe_step_100.pt'", found)


def test_every_format_and_the_ledger_take_such_names(tmp_path: Path) -> None:
    from alphawatch.analysis.options import AnalysisOptions
    from alphawatch.pipeline import analyze_file
    from alphawatch.service.ledger import Ledger
    from safetensors.torch import save_file

    from tests.factories import sac_state_dicts

    actor = {k: v.contiguous() for k, v in sac_state_dicts(hidden=32)["actor"].items()}
    folder = os.fsencode(tmp_path)
    save_file(actor, str(tmp_path / "plain.safetensors"))
    os.rename(folder + b"/plain.safetensors", folder + b"/\xe9t\xe9_200.safetensors")  # latin-1 name
    save_sac_checkpoint(tmp_path / "plain.pt", step=100, hidden=32)
    os.rename(folder + b"/plain.pt", folder + b"/\xff_100.pt")
    for raw, step in ((b"/\xe9t\xe9_200.safetensors", 200), (b"/\xff_100.pt", 100)):
        path = Path(os.fsdecode(folder + raw))
        assert analyze_file(path, AnalysisOptions(dead_neuron_method="weight"))["step"] == step

    with Ledger(tmp_path / "ledger.sqlite3") as ledger:
        name = os.fsdecode(folder + b"/\xff_100.pt")
        identity = {"size": 1, "mtime_ns": 1, "inode": 1, "step": 100}
        row_id, queued = ledger.record_seen("r", name, **identity)
        assert queued and ledger.record_seen("r", name, **identity) == (row_id, False)
        row = ledger.claim_next()
        assert row is not None and row.path == name
        assert ledger.mark_failed(row_id, "unreadable", f"{name}: cannot read", 0.1) == "pending"
        assert ledger.find("r", name).message.startswith(os.fsdecode(folder) + "/\\xff_100.pt")  # type: ignore[union-attr]
        assert ledger.move(row_id, os.fsdecode(folder + b"/\xfe_100.pt"), 100)
        assert ledger.find("r", os.fsdecode(folder + b"/\xfe_100.pt")) is not None
