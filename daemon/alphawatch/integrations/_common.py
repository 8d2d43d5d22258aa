"""What every framework callback shares: the reader, the check schedule, the log line.

Standard library only (plus alphawatch.client), so it adds nothing to a framework import.
"""

from __future__ import annotations

import logging
import os

from alphawatch.client import Signal, StopSignal

#: The callbacks log here (stdlib logging), so users route it like any other logger.
logger = logging.getLogger("alphawatch")


def make_reader(stop_file: str | os.PathLike[str] | StopSignal, stop_on_invalid: bool) -> StopSignal:
    """Accept a path or a ready reader (to share one, or to set ``poll_interval``)."""
    if isinstance(stop_file, StopSignal):
        return stop_file
    return StopSignal(stop_file, stop_on_invalid=stop_on_invalid)


def check_every(value: int) -> int:
    if int(value) < 1:
        raise ValueError(f"check_every_n_steps must be >= 1, got {value!r}")
    return int(value)


def stop_message(framework: str, step: int, reader: StopSignal) -> str:
    """The one line logged when a callback stops training: why, and where to go back to."""
    signal: Signal | None = reader.signal
    if signal is not None:
        why = signal.describe()
    else:
        why = f"the stop file {reader.path} exists but could not be read (stop_on_invalid=True)"
    return (
        f"alphawatch: stopping {framework} training at step {step}: {why}. "
        f"Stop file: {reader.path} (clear it with `alphawatch signal clear --stop-file {reader.path}` "
        f"before resuming)"
    )


def log_stop(framework: str, step: int, reader: StopSignal) -> None:
    logger.warning(stop_message(framework, step, reader))
