"""The daemon's side of the analysis worker: start it, talk to it, replace it.

Why: the daemon's main process must stay small and never import torch or
WeightWatcher (see docs/CONTRACTS.md "Import rules"). All analysis runs in one
warm child process (`alphawatch.service.worker_main`), spoken to in JSON lines
over pipes. This class enforces what the child cannot enforce on itself:

- `worker.timeout_seconds`: the child is killed (SIGKILL to its process group),
  the checkpoint fails with reason `timeout`, and a fresh worker is started;
- death (segfault, kernel OOM killer): reason `worker_crashed`, fresh worker;
- memory: the child limits its own address space per request (`out_of_memory`);
  here it is also replaced when its resident memory has grown past its warm
  size + `worker.memory_limit_mb` (a leak would otherwise accumulate).
"""

from __future__ import annotations

import collections
import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from alphawatch.analysis.options import AnalysisOptions
from alphawatch.config import WorkerConfig
from alphawatch.results import CheckpointResult


class WorkerStartError(RuntimeError):
    """The worker process could not be started or did not become ready."""


class Abandoned(RuntimeError):
    """The analysis in flight was abandoned by `kill()` (shutdown)."""


class _Died(Exception):
    pass


class _TimedOut(Exception):
    pass


@dataclass(frozen=True)
class Outcome:
    """One analysis: `result` when ok, else a `reason` from errors.REASONS and a `message`."""

    ok: bool
    duration: float
    result: CheckpointResult | None = None
    reason: str | None = None
    message: str | None = None


class AnalysisWorker:
    """A warm analysis subprocess; `analyze()` is called from one thread at a time."""

    def __init__(
        self,
        cfg: WorkerConfig,
        options: AnalysisOptions,
        logger: Any = None,
        python: str = sys.executable,
        startup_timeout: float = 180.0,
    ) -> None:
        from alphawatch.service.logging import get_logger

        self.cfg, self.options, self.python = cfg, options, python
        self.log = logger if logger is not None else get_logger("alphawatch.worker")
        self.startup_timeout = startup_timeout
        self._proc: subprocess.Popen[bytes] | None = None
        self._req: Any = None
        self._resp_fd: int | None = None
        self._buf = b""
        self._ready: dict[str, Any] | None = None
        self._stderr_tail: collections.deque[str] = collections.deque(maxlen=40)
        self._abandon = threading.Event()
        self._seq = 0
        self.restarts = 0

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    # ---------------------------------------------------------------- lifecycle
    def start(self) -> None:
        """Spawn (if needed: never started, or found dead) and wait until the worker has
        imported everything. WorkerStartError when it cannot be started."""
        if self._proc is not None and self._proc.poll() is not None:
            self._replace(f"found dead while idle (exit {self._proc.returncode})")
        if self._proc is None:
            self._spawn()
        if self._ready is None:
            try:
                msg = self._read(time.monotonic() + self.startup_timeout)
            except (_Died, _TimedOut) as exc:
                tail = self.stderr_tail()
                self._reap()
                if self._abandon.is_set():
                    raise Abandoned("worker start-up") from None
                why = type(exc).__name__.strip("_").lower()
                raise WorkerStartError(f"analysis worker did not start ({why}): {tail}") from None
            if not msg.get("ready"):
                self._reap()
                raise WorkerStartError(f"analysis worker sent {msg!r} instead of its ready line")
            self._ready = msg
            self.log.info(
                "worker_ready",
                pid=msg.get("pid"),
                baseline_vm_mb=msg.get("baseline_vm_mb"),
                rss_mb=msg.get("rss_mb"),
            )

    def _spawn(self) -> None:
        """Start the process; WorkerStartError when it cannot even be started (the interpreter
        is missing or not executable, no descriptors left for its pipes)."""
        try:
            self._popen()
        except OSError as exc:
            self._proc = None
            raise WorkerStartError(f"cannot run {self.python}: {type(exc).__name__}: "
                                   f"{exc.strerror or exc}") from None

    def _popen(self) -> None:
        req_r, req_w = os.pipe()
        try:
            resp_r, resp_w = os.pipe()
        except OSError:
            os.close(req_r)
            os.close(req_w)
            raise
        cfg = self.cfg
        # parent_pid: the worker checks it right after asking for PR_SET_PDEATHSIG, so a daemon
        # that died during the spawn is noticed. (The signal follows the spawning *thread*: the
        # daemon spawns from its analysis thread, which lives as long as the daemon.)
        settings = {"threads": cfg.threads, "nice": cfg.nice, "memory_limit_mb": cfg.memory_limit_mb,
                    "parent_pid": os.getpid(), "options": self.options.to_json()}
        try:
            self._proc = subprocess.Popen(
                [self.python, "-m", "alphawatch.service.worker_main", str(resp_w), json.dumps(settings)],
                stdin=req_r,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                pass_fds=(resp_w,),
                start_new_session=True,  # its own process group: a kill reaches anything it spawned
            )
        except OSError:
            os.close(req_w)
            os.close(resp_r)
            raise
        finally:
            os.close(req_r)
            os.close(resp_w)
        self._req = os.fdopen(req_w, "wb", buffering=0)
        self._resp_fd, self._buf, self._ready = resp_r, b"", None
        self._abandon.clear()
        drain = threading.Thread(target=self._drain_stderr, args=(self._proc,), daemon=True)
        drain.start()

    def _drain_stderr(self, proc: subprocess.Popen[bytes]) -> None:
        """Keep the child's stderr (WeightWatcher chatter, tracebacks) out of the logs but at hand."""
        assert proc.stderr is not None
        for raw in proc.stderr:
            line = raw.decode("utf-8", "replace").rstrip()
            if line:
                self._stderr_tail.append(line)

    def stderr_tail(self, lines: int = 3) -> str:
        return " | ".join(list(self._stderr_tail)[-lines:]) or "(no output)"

    def stop(self) -> None:
        """Ask the worker to exit (EOF on its stdin), then make sure it did."""
        proc = self._proc
        if proc is None:
            return
        try:
            self._req.close()
            proc.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            pass
        self._reap()

    def kill(self) -> None:
        """Abandon the analysis in flight (thread-safe): the caller of analyze() gets Abandoned."""
        self._abandon.set()
        self._kill_group()

    def _kill_group(self) -> None:
        proc = self._proc
        if proc is not None and proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except OSError:
                proc.kill()

    def _reap(self) -> None:
        self._kill_group()
        proc, self._proc, self._ready = self._proc, None, None
        if proc is not None:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        for closer in (self._req, self._resp_fd):
            try:
                if isinstance(closer, int):
                    os.close(closer)
                elif closer is not None:
                    closer.close()
            except OSError:
                pass
        self._req, self._resp_fd = None, None

    def _replace(self, why: str) -> None:
        old = self.pid
        self._reap()
        self.restarts += 1
        self.log.warning("worker_replaced", old_pid=old, why=why)
        try:
            self._spawn()  # warm up in the background; the next analyze() waits for its ready line
        except WorkerStartError:
            pass  # the next start() tries again and raises it, with the checkpoint not yet claimed

    # ---------------------------------------------------------------- requests
    def analyze(self, path: Path, root: Path | None) -> Outcome:
        """Analyze one checkpoint; never raises for a bad file (only WorkerStartError, Abandoned)."""
        self.start()
        self._seq += 1
        request = {"id": self._seq, "path": str(path), "root": str(root) if root else None}
        started = time.monotonic()
        try:
            self._req.write((json.dumps(request) + "\n").encode())
            msg = self._read(started + self.cfg.timeout_seconds)
        except _TimedOut:
            self._replace("timeout")
            return Outcome(
                False,
                time.monotonic() - started,
                reason="timeout",
                message=f"{path}: analysis took longer than worker.timeout_seconds="
                f"{self.cfg.timeout_seconds:g}; the worker was killed",
            )
        except (_Died, BrokenPipeError, OSError):
            if self._abandon.is_set():
                self._reap()
                raise Abandoned(str(path)) from None
            how = self._death()
            self._replace(f"died ({how})")
            return Outcome(
                False,
                time.monotonic() - started,
                reason="worker_crashed",
                message=f"{path}: the analysis worker died ({how}): {self.stderr_tail()}",
            )
        outcome = Outcome(
            ok=bool(msg.get("ok")),
            duration=float(msg.get("duration", time.monotonic() - started)),
            result=cast(CheckpointResult | None, msg.get("result")),
            reason=msg.get("reason"),
            message=msg.get("message"),
        )
        self._maybe_recycle(msg)
        return outcome

    def _death(self) -> str:
        """How the worker ended, e.g. "killed by SIGKILL" or "exit status 1".

        Its pipe closes a moment before the kernel reports the exit, so wait for that
        briefly instead of reading a status that is not there yet (`exit None`).
        """
        proc = self._proc
        if proc is None:
            return "gone"
        try:
            code = proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            return "closed its pipe but is still running"
        time.sleep(0.05)  # let the stderr thread catch the last words
        if code < 0:
            try:
                return f"killed by {signal.Signals(-code).name}"
            except ValueError:
                return f"killed by signal {-code}"
        return f"exit status {code}"

    def _maybe_recycle(self, msg: dict[str, Any]) -> None:
        baseline = int((self._ready or {}).get("rss_mb", 0))
        rss = int(msg.get("rss_mb", 0))
        if msg.get("recycle"):
            self._replace("out_of_memory")
        elif self.cfg.memory_limit_mb > 0 and rss > baseline + self.cfg.memory_limit_mb:
            self._replace(f"resident memory {rss} MiB outgrew {baseline} + {self.cfg.memory_limit_mb} MiB")

    def _read(self, deadline: float) -> dict[str, Any]:
        """One JSON line from the worker, or _TimedOut/_Died."""
        while b"\n" not in self._buf:
            if self._abandon.is_set() or self._resp_fd is None:
                raise _Died()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise _TimedOut()
            ready, _, _ = select.select([self._resp_fd], [], [], min(remaining, 0.5))
            if ready:
                chunk = os.read(self._resp_fd, 1 << 20)
                if not chunk:
                    raise _Died()
                self._buf += chunk
        line, _, self._buf = self._buf.partition(b"\n")
        try:
            return dict(json.loads(line))
        except ValueError:
            raise _Died() from None
