"""Training order: the one order of checkpoints that every part uses.

Checkpoints with a training step sort by step. A checkpoint without one
(`torch.save(model.state_dict(), "best_model.pt")` next to `model_<epoch>.pt`) sits where
it was written: after every stepped checkpoint written no later than it (by mtime), and
before the next one. Its *anchor* is the largest step among the stepped checkpoints
written at or before it (-1 when none was). The sort key is then

    (anchor, stepped before step-less, mtime, seen order)

Why not "unknown steps last": a stale `best_model.pt` would be the newest checkpoint
forever, so the gauges would freeze on it and the stop rule would judge it instead of the
checkpoint just written. Why not mtime alone: a checkpoint copied in later keeps the step
it was trained to.

The same rule has two forms: `training_order` for lists in memory (`alphawatch analyze`,
the trend) and `ANCHOR_SQL`/`ORDER_SQL` for the ledger, which keeps each row's anchor in
a column (see `ledger.py`) so the newest checkpoint is one indexed lookup.
tests/test_ordering.py checks that both forms agree.

Standard library only.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Sequence
from typing import TypeVar

T = TypeVar("T")

NO_ANCHOR = -1  # a step-less checkpoint written before any stepped one

# SQL form over the ledger's `checkpoints` table. The anchor of a step-less row, from the
# stepped rows of its run (any status: a stepped file that failed was still written then).
ANCHOR_SQL = (
    "COALESCE((SELECT MAX(o.step) FROM checkpoints o WHERE o.run = checkpoints.run"
    " AND o.step IS NOT NULL AND o.mtime_ns <= checkpoints.mtime_ns), -1)"
)
ORDER_SQL = "order_step, step IS NULL, mtime_ns, id"
DESC_SQL = "order_step DESC, step IS NULL DESC, mtime_ns DESC, id DESC"


def training_keys(steps: Sequence[int | None], mtimes: Sequence[int]) -> list[tuple[int, int, int, int]]:
    """The sort key of each item (given in seen order): see the module docstring."""
    stepped = sorted((m, s) for s, m in zip(steps, mtimes, strict=True) if s is not None)
    stepped_mtimes = [m for m, _ in stepped]
    running_max: list[int] = []
    for _, known in stepped:
        running_max.append(max(known, running_max[-1]) if running_max else known)
    keys = []
    for seq, (step, mtime) in enumerate(zip(steps, mtimes, strict=True)):
        if step is not None:
            keys.append((step, 0, mtime, seq))
            continue
        i = bisect.bisect_right(stepped_mtimes, mtime)
        keys.append((running_max[i - 1] if i else NO_ANCHOR, 1, mtime, seq))
    return keys


def training_order(items: Sequence[T], step: Callable[[T], int | None],
                   mtime: Callable[[T], int | None]) -> list[T]:
    """`items` (in seen order) sorted into training order; a missing mtime counts as 0."""
    keys = training_keys([step(x) for x in items], [mtime(x) or 0 for x in items])
    return [x for _, x in sorted(zip(keys, items, strict=True), key=lambda pair: pair[0])]
