"""The analysis worker process: `python -m alphawatch.service.worker_main RESP_FD SETTINGS_JSON`.

Why a separate process: torch and WeightWatcher are heavy (~3 s and ~830 MB of
address space to import), WeightWatcher changes process-wide state (root logger,
warnings filters, stdout prints), and a hostile or huge checkpoint must not be
able to take the daemon down. This process imports them once, then answers
requests for as long as it lives.

Protocol (JSON lines): SETTINGS_JSON (`threads`, `nice`, `memory_limit_mb`, `parent_pid`,
`options` = `AnalysisOptions.to_json()`) is fixed for the worker's life; requests
`{"id", "path", "root"}` arrive on stdin; responses go to the dedicated file descriptor
RESP_FD (never stdout, which WeightWatcher prints to — stdout is pointed at stderr here):
`{"ready": true, "pid", "baseline_vm_mb", "rss_mb"}` once warm, then per request
`{"id", "ok": true, "result", "duration"}` or
`{"id", "ok": false, "reason", "message", "duration", "recycle"}`. Loading, analysis and
the failure reasons are `alphawatch.pipeline.analyze_file`, the same as the CLI's.

Memory limit: RLIMIT_AS counts address space, not RAM, and the warm worker
already maps ~830 MB (torch + WeightWatcher + BLAS). So for each request the
soft limit is set to *current address space + worker.memory_limit_mb + the
checkpoint's size on disk* (mmap-loaded tensors are address space backed by the
file, not RAM) and lifted again afterwards. Exceeding it raises MemoryError (or
torch's allocator RuntimeError) -> reason `out_of_memory`, and the worker asks to
be replaced (`recycle`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import json
import os
import resource
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS")


def _status_mb(field: str) -> int:
    """A VmSize/VmRSS figure of this process in MiB (0 where /proc is missing)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) // 1024
    except OSError:
        pass
    return 0


def _size_on_disk(path: Path) -> int:
    if path.is_dir():
        return sum(p.lstat().st_size for p in path.rglob("*") if not p.is_dir())
    return path.lstat().st_size


def _set_soft_as(limit_bytes: int | None) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    wanted = hard if limit_bytes is None else limit_bytes
    if hard != resource.RLIM_INFINITY:
        wanted = min(wanted, hard)
    resource.setrlimit(resource.RLIMIT_AS, (wanted, hard))


class Worker:
    """Holds the warm imports and serves one request at a time."""

    def __init__(self, settings: dict[str, Any]) -> None:
        self.memory_limit_mb = int(settings.get("memory_limit_mb", 0))
        import torch

        torch.set_num_threads(max(1, int(settings.get("threads", 1))))
        from alphawatch.analysis.options import AnalysisOptions
        from alphawatch.pipeline import analyze_file

        self.torch, self.analyze_file = torch, analyze_file
        # Next to a trainer, intra-op threads wait on each other for the cores it holds: the
        # daemon spreads layers over its threads and never gives one layer several.
        options = AnalysisOptions.from_json(settings.get("options") or {})
        self.options = dataclasses.replace(options, intra_op_when_alone=False)
        self._warm_up()

    def _warm_up(self) -> None:
        """Run one tiny analysis so lazy imports inside WeightWatcher/SciPy happen now, not on
        the first real checkpoint (and so the address-space baseline includes them)."""
        from alphawatch import checkpoints
        from alphawatch.analysis import AnalysisOptions, analyze_checkpoint

        gen = self.torch.Generator().manual_seed(0)
        tensors = {"0.weight": self.torch.randn(64, 32, generator=gen)}
        ckpt = checkpoints.Checkpoint(
            path="<warm-up>",
            format="torch_zip",
            step=None,
            networks={"warmup": tensors},
            keys={"warmup": {"0.weight": "warmup.0.weight"}},
            notes=[],
        )
        try:
            analyze_checkpoint(ckpt, AnalysisOptions(dead_neuron_method="weight"))
        except Exception as exc:  # warm-up is an optimisation; report it, keep serving
            print(f"alphawatch worker: warm-up analysis failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        gc.collect()

    def handle(self, req: dict[str, Any]) -> dict[str, Any]:
        from alphawatch.errors import CheckpointError

        start = time.monotonic()
        path = Path(req["path"])
        root = Path(req["root"]) if req.get("root") else None
        base = {"id": req.get("id")}
        try:
            with self._memory_budget(path):
                result = self.analyze_file(path, self.options, root=root)
            text = json.dumps(result, allow_nan=False)  # strict JSON or a clear failure
        except CheckpointError as exc:
            return self._fail(base, start, exc.reason, exc.message, recycle=exc.reason == "out_of_memory")
        except ValueError as exc:
            return self._fail(base, start, "internal_error", f"{path}: the result is not strict JSON ({exc})")
        finally:
            gc.collect()
        return {**base, "ok": True, "result": json.loads(text), "duration": time.monotonic() - start}

    @contextlib.contextmanager
    def _memory_budget(self, path: Path) -> Iterator[None]:
        """Limit the address space for one analysis (see the module docstring), then lift it:
        serializing the result is not the checkpoint's budget."""
        if self.memory_limit_mb > 0:
            try:
                extra = _size_on_disk(path)
            except OSError:
                extra = 0
            _set_soft_as((_status_mb("VmSize") + self.memory_limit_mb) * 1024 * 1024 + extra)
        try:
            yield
        finally:
            _set_soft_as(None)

    @staticmethod
    def _fail(
        base: dict[str, Any], start: float, reason: str, message: str, recycle: bool = False
    ) -> dict[str, Any]:
        return {
            **base,
            "ok": False,
            "reason": reason,
            "message": message,
            "duration": time.monotonic() - start,
            "recycle": recycle,
        }


def _die_with_parent(parent: int | None) -> None:
    """Linux: get SIGKILL when the daemon dies (even by `kill -9`), so no orphan keeps
    analyzing. Best effort: elsewhere the worker exits at EOF on its stdin instead.

    `parent` is the daemon's pid as the daemon itself sent it: reading `os.getppid()` here
    instead would race, since a daemon that died during our start-up has already
    re-parented us, and the death signal set after that never comes.
    """
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, 9, 0, 0, 0)  # PR_SET_PDEATHSIG, SIGKILL
    except (OSError, AttributeError):
        return
    if parent is not None and os.getppid() != parent:  # the daemon died before prctl took effect
        os._exit(1)


def _first_to_be_oom_killed() -> None:
    """Linux: when memory runs out (the machine's, or a container's limit), the kernel's OOM
    killer must pick this process, never the daemon: a checkpoint that needs too much memory
    then fails as `worker_crashed`, while the daemon (which never loads checkpoints) lives on.
    That is why an interrupted analysis is not counted against the checkpoint (ledger.py)."""
    try:
        with open("/proc/self/oom_score_adj", "w", encoding="ascii") as fh:
            fh.write("1000")
    except OSError:
        pass


def main(argv: list[str]) -> int:
    settings: dict[str, Any] = json.loads(argv[2]) if len(argv) > 2 else {}
    _die_with_parent(settings.get("parent_pid"))
    _first_to_be_oom_killed()
    resp_fd = int(argv[1])
    os.dup2(2, 1)  # anything printed (WeightWatcher's "SMALL N PL FIT"...) lands on stderr
    sys.stdout = sys.stderr
    out = os.fdopen(resp_fd, "w", encoding="utf-8", buffering=1)
    threads = str(max(1, int(settings.get("threads", 1))))
    for var in _THREAD_VARS:
        os.environ[var] = threads
    try:
        os.nice(int(settings.get("nice", 0)))
    except OSError as exc:
        print(f"alphawatch worker: could not lower priority: {exc}", file=sys.stderr)
    worker = Worker(settings)
    ready = {
        "ready": True,
        "pid": os.getpid(),
        "baseline_vm_mb": _status_mb("VmSize"),
        "rss_mb": _status_mb("VmRSS"),
    }
    out.write(json.dumps(ready) + "\n")
    for line in sys.stdin:
        if not line.strip():
            continue
        response = worker.handle(json.loads(line))
        response["rss_mb"] = _status_mb("VmRSS")
        out.write(json.dumps(response, allow_nan=False) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
