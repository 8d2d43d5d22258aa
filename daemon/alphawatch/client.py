"""Read the alphawatch stop signal from inside a training loop (standard library only).

The daemon writes one small JSON file when a network's health crosses the configured
rule (see docs/CONTRACTS.md, "Stop signal"). Training code only has to ask, every step,
"is it there?". This module answers that cheaply and safely:

- Standard library only, so it imports in any training environment, with or without
  torch, and never pulls in the daemon's dependencies.
- Cheap: when nothing changed since the last check, a check is one ``os.stat``; with
  ``poll_every=N`` only every N-th call stats at all, and ``poll_interval`` can bound the
  checks in wall-clock time too.
- Never raises inside a training loop. A missing file means "no signal". Unreadable
  content (permissions, a directory, invalid UTF-8, invalid JSON, not an object, a huge
  file) means "no signal" too, and says why in one ``warnings.warn`` per distinct problem.

Decision (documented in docs/training.md): ``should_stop()`` is True only for a valid JSON
object whose ``stop`` field is exactly ``true``. A corrupt or foreign file does not end a
multi-day run silently; it warns instead. Pass ``stop_on_invalid=True`` to fail closed
(stop on any file that exists but cannot be understood). The daemon writes atomically
(temp file, fsync, rename), so a reader never sees a half-written signal from it; a
hand-written file caught mid-write is re-read as soon as its size or mtime changes.
"""

from __future__ import annotations

import json
import math
import os
import stat
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["FIELDS", "MAX_SIGNAL_BYTES", "Signal", "StopSignal", "StopSignalWarning", "parse_signal",
           "signal_from_object"]

#: A stop signal is a few hundred bytes; anything much larger is not one of ours.
MAX_SIGNAL_BYTES = 1 << 20
#: Distinct warnings remembered per reader (so a file flapping between many bad states
#: cannot grow memory without bound).
_MAX_REMEMBERED_WARNINGS = 64

#: The protocol's fields, in the order the daemon writes them (docs/stop-signal.md).
FIELDS = ("stop", "reason", "run", "network", "metric", "value", "threshold", "checkpoint", "step",
          "recommended_checkpoint", "created_at", "version")
_STRING_FIELDS = ("reason", "run", "network", "metric", "checkpoint", "recommended_checkpoint", "created_at")
_NUMBER_FIELDS = ("value", "threshold")
_KNOWN_FIELDS = frozenset(FIELDS)


class StopSignalWarning(UserWarning):
    """A stop-signal file exists but could not be understood (training continues)."""


@dataclass(frozen=True)
class Signal:
    """The fields of a stop-signal file. Missing or mistyped optional fields are None."""

    stop: bool
    reason: str | None = None
    run: str | None = None
    network: str | None = None
    metric: str | None = None
    value: float | None = None
    threshold: float | None = None
    checkpoint: str | None = None
    step: int | None = None
    recommended_checkpoint: str | None = None
    created_at: str | None = None
    version: int | str | None = None
    #: Fields this reader does not know (newer writers may add some); kept, not rejected.
    extra: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The file's JSON object: the known fields in protocol order, then the extra ones.

        The daemon writes exactly this, so the writer and every reader share one field list.
        """
        known = {name: getattr(self, name) for name in FIELDS}
        return {**known, **{k: v for k, v in self.extra.items() if k not in known}}

    def describe(self) -> str:
        """One line for a log: the reason, and the checkpoint to go back to if any."""
        reason = self.reason or _default_reason(self)
        if self.recommended_checkpoint:
            return f"{reason} (recommended checkpoint: {self.recommended_checkpoint})"
        return reason


def _default_reason(signal: Signal) -> str:
    if signal.network and signal.value is not None and signal.threshold is not None:
        metric = signal.metric or "alpha"
        return f"{signal.network} {metric} {signal.value:g} crossed threshold {signal.threshold:g}"
    return "stop requested by alphawatch"


class StopSignal:
    """Poll a stop-signal file written by the alphawatch daemon.

    ``path``: the stop file (``stop.path`` in the daemon's config, e.g.
    ``signals/alphawatch-stop.json``). It need not exist yet.
    ``poll_every``: look at the file on the 1st, (N+1)-th, (2N+1)-th ... call of
    ``should_stop()`` and answer the other calls from memory.
    ``poll_interval``: and not more often than once per this many seconds (0 = no limit).
    ``stop_on_invalid``: treat a file that exists but cannot be understood as a stop.
    ``clock``: seconds for ``poll_interval`` (default ``time.monotonic``; tests pass a fake).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        poll_every: int = 1,
        poll_interval: float = 0.0,
        *,
        stop_on_invalid: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if int(poll_every) < 1:
            raise ValueError(f"poll_every must be >= 1, got {poll_every!r}")
        if not poll_interval >= 0:  # also rejects NaN
            raise ValueError(f"poll_interval must be >= 0 seconds, got {poll_interval!r}")
        self.path = os.fspath(path)
        if "\x00" in self.path:  # os.stat would raise ValueError in the loop; refuse it here
            raise ValueError(f"stop-file path contains a NUL byte: {self.path!r}")
        self.poll_every = int(poll_every)
        self.poll_interval = float(poll_interval)
        self.stop_on_invalid = stop_on_invalid
        self._clock = clock
        self._calls = 0
        self._last_check: float | None = None
        self._identity: tuple[int, ...] | None = None  # stat of the content we parsed
        self._signal: Signal | None = None
        self._invalid = False  # the file exists but could not be understood
        self._warned: set[str] = set()
        self._pending: list[str] = []  # warnings raised from the public method, not deep inside

    # -- public API ---------------------------------------------------------------------

    def should_stop(self) -> bool:
        """True when the daemon asked this run to stop. Never raises."""
        self._calls += 1
        due = (self._calls - 1) % self.poll_every == 0
        if due and self.poll_interval and self._last_check is not None:
            due = self._clock() - self._last_check >= self.poll_interval
        if due:
            self._refresh()
            self._flush_warnings()
        return self._decision()

    def read(self) -> Signal | None:
        """The current signal, looked up now (ignores ``poll_every``), or None. Never raises."""
        self._refresh()
        self._flush_warnings()
        return self._signal

    @property
    def signal(self) -> Signal | None:
        """The signal seen by the last check, without touching the file."""
        return self._signal

    # -- internals ----------------------------------------------------------------------

    def _decision(self) -> bool:
        if self._signal is not None:
            return self._signal.stop
        return self._invalid and self.stop_on_invalid

    def _refresh(self) -> None:
        self._last_check = self._clock()
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            self._forget()
            return
        except NotADirectoryError:  # a parent is a file: same as "not there"
            self._forget()
            return
        except OSError as exc:
            self._set_invalid(f"cannot stat the stop file {self.path}: {exc.strerror or exc}")
            return
        if _identity(st) == self._identity:
            return  # the cheap path: unchanged since we parsed it
        self._load(st)

    def _forget(self) -> None:
        self._identity = None
        self._signal = None
        self._invalid = False

    def _load(self, seen: os.stat_result) -> None:
        try:
            # O_NONBLOCK: opening a FIFO someone put there must not hang the training loop.
            fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        except FileNotFoundError:  # removed between stat and open
            self._forget()
            return
        except OSError as exc:
            self._identity = _identity(seen)  # retry only once it changes (e.g. a chmod)
            self._set_invalid(f"cannot open the stop file {self.path}: {exc.strerror or exc}")
            return
        try:
            # fstat the descriptor we read from, so the identity we cache is that of
            # exactly the content we parse (a rename between stat and open is harmless).
            st = os.fstat(fd)
            identity = _identity(st)
            if not stat.S_ISREG(st.st_mode):
                self._identity = identity
                self._set_invalid(f"the stop file {self.path} is not a regular file")
                return
            data = _read_at_most(fd, MAX_SIGNAL_BYTES + 1)
        except OSError as exc:
            self._set_invalid(f"cannot read the stop file {self.path}: {exc.strerror or exc}")
            return
        finally:
            os.close(fd)
        self._identity = identity
        if len(data) > MAX_SIGNAL_BYTES:
            self._set_invalid(f"the stop file {self.path} is larger than {MAX_SIGNAL_BYTES} bytes")
            return
        signal, problem = parse_signal(data)
        if signal is None:
            self._set_invalid(f"the stop file {self.path} {problem}")
            return
        if problem:
            self._warn(f"the stop file {self.path} {problem}")
        self._signal = signal
        self._invalid = False

    def _set_invalid(self, message: str) -> None:
        self._signal = None
        self._invalid = True
        action = "stopping (stop_on_invalid=True)" if self.stop_on_invalid else "ignoring it"
        self._warn(f"{message}; {action}")

    def _warn(self, message: str) -> None:
        if message in self._warned:
            return
        if len(self._warned) >= _MAX_REMEMBERED_WARNINGS:
            self._warned.clear()
        self._warned.add(message)
        self._pending.append(message)

    def _flush_warnings(self) -> None:
        # Called only from should_stop()/read(), so stacklevel=3 points at the caller's line.
        pending, self._pending = self._pending, []
        for message in pending:
            warnings.warn(message, StopSignalWarning, stacklevel=3)


def _identity(st: os.stat_result) -> tuple[int, ...]:
    """What changes whenever the file is replaced or rewritten."""
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _read_at_most(fd: int, limit: int) -> bytes:
    chunks: list[bytes] = []
    total = 0
    while total < limit:
        try:
            chunk = os.read(fd, min(65536, limit - total))
        except BlockingIOError:  # an empty FIFO (guarded above, but never block)
            break
        if not chunk:
            break
        chunks.append(chunk)
        total += len(chunk)
    return b"".join(chunks)


def parse_signal(data: bytes) -> tuple[Signal | None, str | None]:
    """Parse stop-file bytes. Returns (signal, None), (signal, note) or (None, problem).

    Pure and total: any input gives an answer, never an exception. ``problem`` reads as
    the end of "the stop file X ..." ("is empty", "is not valid JSON: ...").
    """
    if not data.strip():
        return None, "is empty"
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        return None, f"is not UTF-8 text ({exc.reason} at byte {exc.start})"
    try:
        obj = json.loads(text)
    except (ValueError, RecursionError) as exc:
        return None, f"is not valid JSON ({exc})"
    if not isinstance(obj, dict):
        return None, f"holds a JSON {type(obj).__name__}, not an object"
    return signal_from_object(obj)


def signal_from_object(obj: Mapping[str, Any]) -> tuple[Signal | None, str | None]:
    """A parsed JSON object as a Signal: (signal, None), (signal, note) or (None, problem)."""
    stop = obj.get("stop")
    notes: list[str] = []
    if "stop" not in obj:
        return None, 'has no "stop" field'
    if not isinstance(stop, bool):
        return None, f'has "stop": {json.dumps(stop)[:40]}, which is not true or false'
    values: dict[str, Any] = {"stop": stop}
    for name in _STRING_FIELDS:
        values[name] = _typed(obj, name, str, notes)
    for name in _NUMBER_FIELDS:
        values[name] = _number(obj, name, notes)
    step = obj.get("step")
    if step is None or (isinstance(step, int) and not isinstance(step, bool)):
        values["step"] = step
    elif isinstance(step, float) and step.is_integer():
        values["step"] = int(step)
    else:
        values["step"] = None
        notes.append('"step" is not an integer')
    version = obj.get("version")
    values["version"] = version if isinstance(version, (int, str)) and not isinstance(version, bool) else None
    extra = {k: v for k, v in obj.items() if k not in _KNOWN_FIELDS}
    note = ("has mistyped fields, read as null: " + "; ".join(notes)) if notes else None
    return Signal(**values, extra=extra), note


def _typed(obj: Mapping[str, Any], name: str, kind: type, notes: list[str]) -> Any:
    value = obj.get(name)
    if value is None or isinstance(value, kind):
        return value
    notes.append(f'"{name}" is not a {kind.__name__}')
    return None


def _number(obj: Mapping[str, Any], name: str, notes: list[str]) -> float | None:
    value = obj.get(name)
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    notes.append(f'"{name}" is not a finite number')
    return None
