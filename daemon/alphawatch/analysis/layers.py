"""Analyze a network's units: several at a time, identical tensors once.

Why threads, not intra-op parallelism: on the daemon's 2-core machine, next to a training
job, torch/MKL with 2 intra-op threads was 4-40x *slower* than one thread (OpenMP workers
spin-waiting for a core the trainer holds, even with OMP_WAIT_POLICY=PASSIVE; measured on
one 4096x4096 layer: 57 s with 2 intra-op threads, 8 s with one; docs/analysis.md). LAPACK
releases the GIL, so `threads` Python threads that each run single-threaded kernels keep
every core busy without ever waiting on each other.

A unit that runs alone (the last one, with every other thread idle: a checkpoint that is one
huge matrix) gets the pool's threads as intra-op threads instead, so `threads` cores stay
busy and no more. On the idle 2-core machine, one 4096x4096 layer: 3.0-3.7 s instead of
3.9-5.1 s (OpenBLAS's own threads split the syrk well, 0.6-0.8 vs 1.1 s, where splitting it
over two of our threads had been slower; MKL's eigvalsh 2.4-2.6 vs 3.0-3.8 s). The risk above
is unchanged: next to a trainer that holds the cores it was worse than one thread (4096x4096:
8-12 s against 7-8 s, and the trainer lost more), so the daemon's worker never does it
(`AnalysisOptions.intra_op_when_alone`); the CLI and the API do.

Why a content-hash cache: SAC target networks start equal to their critics, frozen layers
do not change between checkpoints, and tied weights appear twice; the spectrum of the same
bytes is the same. Keyed by BLAKE3 of the bytes plus dtype, shape and pooling scale; the
cache lives as long as the process (the daemon's worker) and holds small dicts only. BLAKE3,
not hashlib's SHA-256: a cryptographic hash either way (a watched folder is untrusted input,
so no crafted collision may pass one layer's numbers off as another's), and 4.6x faster here
(3.6 vs 0.78 GB/s; SHA-256 was ~11% of MiniLM-L6's CPU time).
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import TYPE_CHECKING, Any

from alphawatch.analysis import eigen
from alphawatch.analysis.matrices import Unit
from alphawatch.analysis.spectral import analyze_unit

if TYPE_CHECKING:
    import torch

CACHE_ENTRIES = 4096


class SpectralCache:
    """A bounded LRU of spectral results by content; safe to share between threads."""

    def __init__(self, entries: int = CACHE_ENTRIES) -> None:
        self.entries = entries
        self._data: OrderedDict[tuple[Any, ...], dict[str, Any]] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: tuple[Any, ...]) -> dict[str, Any] | None:
        with self._lock:
            found = self._data.get(key)
            if found is None:
                self.misses += 1
                return None
            self._data.move_to_end(key)
            self.hits += 1
            return dict(found)

    def put(self, key: tuple[Any, ...], value: dict[str, Any]) -> None:
        with self._lock:
            self._data[key] = dict(value)
            self._data.move_to_end(key)
            while len(self._data) > self.entries:
                self._data.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()
            self.hits = self.misses = 0


CACHE = SpectralCache()


def content_key(unit: Unit) -> tuple[Any, ...] | None:
    """(dtype, shape, scale, BLAKE3 of the bytes) of a unit's stack; None when there is none."""
    import blake3
    import torch

    if unit.stack is None:
        return None
    raw = unit.stack.detach().contiguous().reshape(-1).view(torch.uint8)  # any dtype, as bytes
    digest = blake3.blake3(raw.cpu().numpy().data).hexdigest()
    return (str(unit.stack.dtype), tuple(unit.stack.shape), unit.eval_scale, digest)


def _own_threads(threads: int) -> None:
    """torch's thread count (and MKL's, under it) belongs to the calling thread: a pool thread
    sets its own. Left unset, a fresh thread's first MKL call took two threads."""
    import torch

    torch.set_num_threads(threads)


def _analyze_cached(
    unit: Unit, device: torch.device, cache: SpectralCache | None, threads: int = 1
) -> dict[str, Any]:
    """Runs in a pool thread; `threads` > 1 only for a unit that runs alone."""
    key = content_key(unit) if cache is not None else None
    if key is not None and cache is not None:
        found = cache.get(key)
        if found is not None:
            return found
    _own_threads(threads)
    result = analyze_unit(unit, device)
    if key is not None and cache is not None:
        cache.put(key, result)
    return result


def _then(work: Callable[[], object]) -> object:
    """`analyze_units`' `then`, on a pool thread, single-threaded like a unit."""
    _own_threads(1)
    return work()


def analyze_units(
    units: Iterable[Unit],
    threads: int,
    device: torch.device,
    cache: SpectralCache | None = CACHE,
    *,
    intra_op_when_alone: bool = True,
    then: Callable[[], object] | None = None,
) -> Iterator[tuple[Unit, dict[str, Any]]]:
    """(unit, spectral fields) in the order given; at most `threads` units in flight.

    `units` may be a lazy iterable (tensors loaded on demand): only the units in flight hold
    a tensor (a unit comes back with `stack` None), so memory is bounded by `threads`
    tensors, not by the checkpoint. A free thread takes the next unit even while an earlier,
    bigger one is still running: waiting for results in order left a core idle behind every
    large layer (GPT-2-like set: 1.45 s before, 1.15 s after, both cores ~94% busy). On the
    CPU every kernel runs single-threaded, unless a unit runs alone and `intra_op_when_alone`
    (see the module doc); on a GPU units go one at a time.

    `then` (the dead-neuron counts, which read the checkpoint too) runs on the first thread
    that finds no unit left, while the last units finish, instead of after them on one core
    (MiniLM-L6: 35-45 ms, ~8% of the whole); it has run, once, when the iteration ends. It
    waits for a unit running alone, which has every thread.
    """
    workers = max(1, threads) if device.type == "cpu" else 1
    source = iter(units)
    following: Unit | None = None  # taken from `source` only to learn whether it was empty
    with contextlib.ExitStack() as scope:
        if device.type == "cpu":
            scope.enter_context(eigen.blas_threads(1))
        pool = scope.enter_context(ThreadPoolExecutor(workers, thread_name_prefix="alphawatch-layer"))
        ordered: deque[tuple[Unit, Future[dict[str, Any]]]] = deque()
        running: set[Future[Any]] = set()
        exhausted = False
        alone_unit: Future[dict[str, Any]] | None = None
        tail: Future[object] | None = None
        while True:
            while not exhausted and len(running) < workers:
                unit = following if following is not None else next(source, None)
                following = None
                if unit is None:
                    exhausted = True
                    break
                # Look ahead only when every thread is idle, so no extra tensor is ever held.
                alone = (intra_op_when_alone and workers > 1 and not running
                         and (following := next(source, None)) is None)
                if alone:  # OpenBLAS's count is per process; set from a pool thread, it did not take
                    scope.enter_context(eigen.blas_threads(workers))
                future = pool.submit(_analyze_cached, unit, device, cache, workers if alone else 1)
                alone_unit = future if alone else alone_unit
                ordered.append((dataclasses.replace(unit, stack=None), future))
                running.add(future)
                del unit  # the pool holds the tensor until the unit is analyzed, no longer
            if (then is not None and tail is None and exhausted and len(running) < workers
                    and (alone_unit is None or alone_unit.done())):
                tail = pool.submit(_then, then)
                running.add(tail)
            while ordered and ordered[0][1].done():
                done, future = ordered.popleft()
                yield done, future.result()
            if exhausted and not ordered and (then is None or tail is not None):
                if tail is not None:
                    tail.result()
                return
            running = wait(running, return_when=FIRST_COMPLETED).not_done
