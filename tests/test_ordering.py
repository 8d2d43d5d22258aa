"""Training order: one rule, in memory and in the ledger's SQL, giving the same answer."""

from __future__ import annotations

import random
from pathlib import Path

from alphawatch.ordering import training_order
from alphawatch.service.ledger import Ledger


def test_step_less_checkpoints_sit_where_they_were_written() -> None:
    items = [("s100", 100, 10), ("s200", 200, 20), ("best_model.pt", None, 25), ("s300", 300, 30),
             ("early.pt", None, 5), ("late.pt", None, 99)]
    ordered = training_order(items, step=lambda x: x[1], mtime=lambda x: x[2])
    assert [x[0] for x in ordered] == ["early.pt", "s100", "s200", "best_model.pt", "s300", "late.pt"]


def test_a_late_copy_keeps_its_step_and_ties_keep_the_seen_order() -> None:
    items = [("s200", 200, 20), ("s100-copied-later", 100, 50), ("a", None, 30), ("b", None, 30)]
    ordered = training_order(items, step=lambda x: x[1], mtime=lambda x: x[2])
    assert [x[0] for x in ordered] == ["s100-copied-later", "s200", "a", "b"]


def test_the_ledger_orders_exactly_as_training_order(tmp_path: Path) -> None:
    rng = random.Random(7)
    for trial in range(20):
        items = []
        for i in range(rng.randint(1, 25)):
            step = rng.choice([None, rng.randint(0, 50) * 10])
            items.append((f"c{i}", step, rng.randint(0, 40)))
        with Ledger(tmp_path / f"l{trial}.sqlite3") as ledger:
            for name, step, mtime in items:
                ledger.record_seen("r", name, size=1, mtime_ns=mtime, inode=1, step=step)
            from_sql = []
            while (row := ledger.claim_next()) is not None:
                from_sql.append(row.path)
        expected = [x[0] for x in training_order(items, step=lambda x: x[1], mtime=lambda x: x[2])]
        assert from_sql == expected, items
