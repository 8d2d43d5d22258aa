"""Analyze a network's units: several at a time, identical tensors once.

Why threads, not intra-op parallelism: on the daemon's 2-core machine, next to a training
job, torch/MKL with 2 intra-op threads was 4-40x *slower* than one thread (OpenMP workers
spin-waiting for a core the trainer holds, even with OMP_WAIT_POLICY=PASSIVE; measured on
one 4096x4096 layer: 57 s with 2 intra-op threads, 8 s with one; docs/analysis.md). LAPACK
releases the GIL, so `threads` Python threads that each run single-threaded kernels keep
every core busy without ever waiting on each other. The price: a network that is a single
huge matrix uses one core. Splitting its Gram over two of our own threads was measured and
dropped: on this 2-core machine it was slower (4096x4096: 1.47 s against 1.20 s on one), and
still was with the GIL released during syrk (1.08-1.37 s against 0.71-0.93 s): the second
core adds little to BLAS-3 work here, while the memory-bound eigensolvers do scale.

Why a content-hash cache: SAC target networks start equal to their critics, frozen layers
do not change between checkpoints, and tied weights appear twice; the spectrum of the same
bytes is the same. Keyed by SHA-256 of the bytes plus dtype, shape and pooling scale; the
cache lives as long as the process (the daemon's worker) and holds small dicts only.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import threading
from collections import OrderedDict, deque
from collections.abc import Iterable, Iterator
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
    """(dtype, shape, scale, sha256 of the bytes) of a unit's stack; None when there is none."""
    import torch

    if unit.stack is None:
        return None
    stack = unit.stack.detach().contiguous()
    raw = stack.view(torch.uint8) if stack.dtype.itemsize == 1 else stack
    flat = raw.reshape(-1)
    if flat.dtype in (torch.bfloat16, torch.float16):
        flat = flat.view(torch.int16)
    digest = hashlib.sha256(flat.cpu().numpy().data).hexdigest()
    return (str(unit.stack.dtype), tuple(unit.stack.shape), unit.eval_scale, digest)


def _analyze_cached(unit: Unit, device: torch.device, cache: SpectralCache | None) -> dict[str, Any]:
    key = content_key(unit) if cache is not None else None
    if key is not None and cache is not None:
        found = cache.get(key)
        if found is not None:
            return found
    result = analyze_unit(unit, device)
    if key is not None and cache is not None:
        cache.put(key, result)
    return result


def analyze_units(
    units: Iterable[Unit], threads: int, device: torch.device, cache: SpectralCache | None = CACHE
) -> Iterator[tuple[Unit, dict[str, Any]]]:
    """(unit, spectral fields) in the order given; at most `threads` units in flight.

    `units` may be a lazy iterable (tensors loaded on demand): only the units in flight hold
    a tensor (a unit comes back with `stack` None), so memory is bounded by `threads`
    tensors, not by the checkpoint. A free thread takes the next unit even while an earlier,
    bigger one is still running: waiting for results in order left a core idle behind every
    large layer (GPT-2-like set: 1.45 s before, 1.15 s after, both cores ~94% busy). On the
    CPU every kernel runs single-threaded (see the module doc); on a GPU units go one at a time.
    """
    workers = max(1, threads) if device.type == "cpu" else 1
    blas = eigen.single_threaded_blas() if device.type == "cpu" else contextlib.nullcontext()
    source = iter(units)
    with blas, ThreadPoolExecutor(workers, thread_name_prefix="alphawatch-layer") as pool:
        ordered: deque[tuple[Unit, Future[dict[str, Any]]]] = deque()
        running: set[Future[dict[str, Any]]] = set()
        exhausted = False
        while True:
            while not exhausted and len(running) < workers:
                unit = next(source, None)
                if unit is None:
                    exhausted = True
                    break
                future = pool.submit(_analyze_cached, unit, device, cache)
                ordered.append((dataclasses.replace(unit, stack=None), future))
                running.add(future)
                del unit  # the pool holds the tensor until the unit is analyzed, no longer
            while ordered and ordered[0][1].done():
                done, future = ordered.popleft()
                yield done, future.result()
            if exhausted and not ordered:
                return
            running = wait(running, return_when=FIRST_COMPLETED).not_done
