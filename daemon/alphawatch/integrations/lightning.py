"""Lightning: stop ``Trainer.fit`` when the alphawatch stop signal appears.

Multi-process training needs one decision for all ranks: if rank 0 stopped while rank 1
went on, rank 1 would wait forever in its next gradient all-reduce. So only global rank
0 reads the file and the decision is broadcast (``trainer.strategy.broadcast``) on every
rank at the same global step — a collective every rank reaches, because ``global_step``
is the same on all ranks. With one process the broadcast is a no-op.

    from alphawatch.integrations.lightning import AlphawatchStopCallback
    trainer = Trainer(callbacks=[AlphawatchStopCallback("signals/alphawatch-stop.json")])

Lightning honours ``trainer.should_stop`` at the end of the current batch, unless
``min_steps``/``min_epochs`` are not reached yet (then it keeps going until they are).
"""

from __future__ import annotations

import os
from typing import Any

from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import Callback

from alphawatch.client import Signal, StopSignal
from alphawatch.integrations._common import check_every, log_stop, make_reader

__all__ = ["AlphawatchStopCallback"]


class AlphawatchStopCallback(Callback):
    """Set ``trainer.should_stop`` when the stop file says so, agreed across ranks.

    ``stop_file``: path of the daemon's stop file (or a ready ``StopSignal``).
    ``check_every_n_steps``: look every N optimizer steps (1 = every step; a look is one
    ``stat`` on rank 0 plus one broadcast).
    ``stop_on_invalid``: also stop on a file that exists but cannot be understood.
    After a stop, ``signal`` holds what rank 0 read and ``stopped_at_step`` the step.
    """

    def __init__(
        self,
        stop_file: str | os.PathLike[str] | StopSignal,
        check_every_n_steps: int = 1,
        *,
        stop_on_invalid: bool = False,
    ) -> None:
        super().__init__()
        self.reader = make_reader(stop_file, stop_on_invalid)
        self.check_every_n_steps = check_every(check_every_n_steps)
        self.signal: Signal | None = None
        self.stopped_at_step: int | None = None
        self._last_checked_step: int | None = None

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        step = trainer.global_step
        # One look per optimizer step (gradient accumulation repeats global_step), on the
        # same steps on every rank, so the broadcast below is reached by all of them.
        if step == self._last_checked_step or step % self.check_every_n_steps != 0:
            return
        self._last_checked_step = step
        self._check(trainer, step)

    def _check(self, trainer: Trainer, step: int) -> None:
        decision = self.reader.should_stop() if trainer.is_global_zero else False
        decision = bool(trainer.strategy.broadcast(decision, src=0))
        if not decision:
            return
        trainer.should_stop = True
        if self.stopped_at_step is not None:  # already stopping; log once
            return
        self.stopped_at_step = step
        if trainer.is_global_zero:
            self.signal = self.reader.signal
            log_stop("Lightning", step, self.reader)

    def state_dict(self) -> dict[str, Any]:
        # Nothing to resume: the stop file itself is the state.
        return {}
