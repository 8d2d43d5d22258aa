"""Hugging Face ``Trainer``: stop when the alphawatch stop signal appears.

    from alphawatch.integrations.huggingface import AlphawatchStopCallback
    trainer = Trainer(..., callbacks=[AlphawatchStopCallback("signals/alphawatch-stop.json")])

The Trainer finishes the current step, runs its end-of-training hooks (and saves if its
save strategy says so) and returns from ``train()``. Under ``torch.distributed`` only
the world's process 0 reads the file and the decision is broadcast, so every rank stops
at the same step and none waits forever in a collective.
"""

from __future__ import annotations

import os
from typing import Any

from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from alphawatch.client import Signal, StopSignal
from alphawatch.integrations._common import check_every, log_stop, make_reader

__all__ = ["AlphawatchStopCallback"]


def _broadcast_from_zero(decision: bool) -> bool:
    """Rank 0's decision on every rank (a no-op without an initialised process group)."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return decision
    box = [decision]
    dist.broadcast_object_list(box, src=0)
    return bool(box[0])


class AlphawatchStopCallback(TrainerCallback):
    """Set ``control.should_training_stop`` when the stop file says so.

    ``stop_file``: path of the daemon's stop file (or a ready ``StopSignal``).
    ``check_every_n_steps``: look every N optimizer steps.
    ``stop_on_invalid``: also stop on a file that exists but cannot be understood.
    After a stop, ``signal`` holds what process 0 read and ``stopped_at_step`` the step.
    """

    def __init__(
        self,
        stop_file: str | os.PathLike[str] | StopSignal,
        check_every_n_steps: int = 1,
        *,
        stop_on_invalid: bool = False,
    ) -> None:
        self.reader = make_reader(stop_file, stop_on_invalid)
        self.check_every_n_steps = check_every(check_every_n_steps)
        self.signal: Signal | None = None
        self.stopped_at_step: int | None = None

    def on_step_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> TrainerControl:
        step = state.global_step
        if step % self.check_every_n_steps != 0:
            return control
        decision = self.reader.should_stop() if state.is_world_process_zero else False
        if not _broadcast_from_zero(decision):
            return control
        control.should_training_stop = True
        if self.stopped_at_step is None:
            self.stopped_at_step = step
            if state.is_world_process_zero:
                self.signal = self.reader.signal
                log_stop("Hugging Face", step, self.reader)
        return control
