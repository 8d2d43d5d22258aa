"""Stable-Baselines3: stop ``model.learn`` when the alphawatch stop signal appears.

    from alphawatch.integrations.sb3 import AlphawatchStopCallback
    model.learn(total_timesteps=1_000_000, callback=AlphawatchStopCallback("signals/alphawatch-stop.json"))

SB3 calls ``_on_step`` after every ``env.step`` (one call covers all environments of a
vectorised env); returning False ends ``learn`` right there.
"""

from __future__ import annotations

import os

from stable_baselines3.common.callbacks import BaseCallback

from alphawatch.client import Signal, StopSignal
from alphawatch.integrations._common import check_every, log_stop, make_reader

__all__ = ["AlphawatchStopCallback"]


class AlphawatchStopCallback(BaseCallback):
    """Return False from ``_on_step`` once the stop file says so.

    ``stop_file``: path of the daemon's stop file (or a ready ``StopSignal``).
    ``check_every_n_steps``: look every N calls of ``_on_step`` (env steps).
    ``stop_on_invalid``: also stop on a file that exists but cannot be understood.
    After a stop, ``signal`` holds what was read and ``stopped_at_step`` is
    ``model.num_timesteps`` at that moment.
    """

    def __init__(
        self,
        stop_file: str | os.PathLike[str] | StopSignal,
        check_every_n_steps: int = 1,
        *,
        stop_on_invalid: bool = False,
        verbose: int = 0,
    ) -> None:
        super().__init__(verbose)
        self.reader = make_reader(stop_file, stop_on_invalid)
        self.check_every_n_steps = check_every(check_every_n_steps)
        self.signal: Signal | None = None
        self.stopped_at_step: int | None = None

    def _on_step(self) -> bool:
        if self.n_calls % self.check_every_n_steps != 0:
            return True
        if not self.reader.should_stop():
            return True
        self.signal = self.reader.signal
        self.stopped_at_step = self.num_timesteps
        log_stop("Stable-Baselines3", self.num_timesteps, self.reader)
        return False
