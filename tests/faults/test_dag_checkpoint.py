"""Failure 1: a 27 KB checkpoint whose bookkeeping is a shared-list DAG (`L_k = [L_{k-1},
L_{k-1}]`, which `weights_only` allows) used to be walked path by path: 2**30 paths, the
single worker stalled for 3 x timeout while good checkpoints waited."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import torch
from alphawatch.analysis.options import AnalysisOptions
from alphawatch.checkpoints import unwrap
from alphawatch.errors import CheckpointError
from alphawatch.pipeline import analyze_file

from tests.factories import atomic_torch_save, sac_state_dicts, save_sac_checkpoint
from tests.faults.helpers import audit

pytestmark = [pytest.mark.faults, pytest.mark.e2e]


def shared_list_dag(depth: int) -> list[Any]:
    """[L, L] nested `depth` times: `depth` lists in memory and in the pickle, 2**depth paths."""
    level: list[Any] = [0.5]
    for _ in range(depth):
        level = [level, level]
    return level


def save_dag_checkpoint(path: Path, depth: int = 30) -> Path:
    weights = sac_state_dicts(hidden=64)["actor"]
    return atomic_torch_save({"model": weights, "history": shared_list_dag(depth)}, path)


def test_each_container_is_walked_once(tmp_path: Path) -> None:
    path = save_dag_checkpoint(tmp_path / "dag.pt")
    assert path.stat().st_size < 40_000
    obj = torch.load(path, weights_only=True)
    found = unwrap.unwrap(obj)
    # 2**30 paths, 30 distinct lists: the walk looks at each list's children once
    assert found.visited < 200, found.visited
    assert sorted(parts for parts, _ in found.tensors)[0] == ("0.bias",)


def test_an_object_graph_over_the_budget_is_refused_with_a_reason(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    # a wide, tensor-free structure (not a DAG: every list distinct) past the node budget
    path = atomic_torch_save({"model": sac_state_dicts(hidden=16)["actor"],
                              "log": [[float(i)] for i in range(5_000)]}, tmp_path / "wide.pt")
    monkeypatch.setattr(unwrap, "MAX_NODES", 1_000)
    with pytest.raises(CheckpointError) as err:
        analyze_file(path, AnalysisOptions())
    assert err.value.reason == "not_a_checkpoint"
    assert "more than 1,000 objects" in err.value.message and str(path) in err.value.message


def test_a_dag_checkpoint_does_not_hold_up_a_good_one(tmp_path: Path, daemon_factory: Any,
                                                      figure: Any) -> None:
    watch = tmp_path / "ckpts"
    watch.mkdir()
    d = daemon_factory(watch, config={"worker": {"timeout_seconds": 60}})
    d.wait_event("worker_ready", timeout=120)
    written = {}
    dag = save_dag_checkpoint(watch / "step_100.pt")
    written[str(dag)] = time.time()
    good = save_sac_checkpoint(watch / "step_200.pt", step=200, hidden=32)
    written[str(good)] = time.time()
    rows = d.wait_rows(lambda rows: len(rows) == 2 and all(r["status"] == "done" for r in rows), timeout=120)
    assert all(r["attempts"] == 1 for r in rows)
    assert not d.events("checkpoint_failed")
    found = audit(d.state, written)
    assert (found.lost, found.duplicated) == (0, 0)
    figure("1 shared-list DAG checkpoint", "30-level [L, L] history (2^30 paths) + a good checkpoint", found)
