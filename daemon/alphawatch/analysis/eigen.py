"""Eigenvalues of W^T W for a unit's stack of matrices: a fast float32 path and an exact one.

Why not WeightWatcher's way: it runs a float64 SciPy SVD of every matrix (90-99% of its
time). Measured here (bench/, docs/analysis.md#performance), the Gram matrix on the smaller
side (one BLAS-3 product) followed by a symmetric eigensolver is several times cheaper:

- `spectra()` yields a float32 spectrum, then an exact one, each with a bound on its
  absolute error; spectral.py stops at the first one whose power-law
  fit that error cannot change (powerlaw.fit_tail's `robust`).
- The exact one (float64 Gram and `eigvalsh`) agrees with WeightWatcher's SVD to ~1e-13.

The Gram is accumulated over blocks of rows (or columns) converted one block at a time, so
a bf16/fp16 weight, or a memory-mapped one, is never copied whole at a wider dtype.

On CUDA (`device` "auto" with a GPU, or "cuda[:N]") the same computation runs there; the
blocks are moved one at a time, and float32 products are forced to IEEE precision (TF32
would cost three decimal digits).
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import torch

FAST = "fast"
EXACT = "exact"
U32 = 2.0**-24  # float32 unit roundoff
FAST_NOISE = 10.0  # measured up to ~6 (max |error| / (u32 sqrt(k) top), k up to 4096)
# Spectra this small are computed in float64 straight away: it costs nothing.
EXACT_BELOW_EVALS = 128
DEVICES_HELP = "auto, cpu, cuda or cuda:N"
# Elements of one converted block (16 MiB at float32); keeps the transient copy small.
BLOCK_ELEMENTS = 1 << 22

# float64 Gram matrices at least this big (2048^2: 32 MiB) are computed one at a time.
EXACT_SERIAL_ELEMENTS = 2048 * 2048

_precision_lock = threading.Lock()
_EXACT_SLOT = threading.Lock()


def resolve_device(device: str) -> torch.device:
    """`auto` is CUDA when torch sees a GPU, else the CPU; anything else as torch parses it."""
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    parsed = torch.device(device)
    if parsed.type not in ("cpu", "cuda"):
        raise ValueError(f"analysis device {device!r} is not one of {DEVICES_HELP}")
    if parsed.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"analysis device {device!r} was asked for, but torch sees no CUDA device")
    return parsed


@contextlib.contextmanager
def ieee_matmul() -> Iterator[None]:
    """float32 products at full precision inside the block, whatever the caller configured.

    `torch.set_float32_matmul_precision("high")` (TF32 on GPUs, bf16x3 on some CPUs) is
    process-wide and common in training code; a Gram matrix computed that way loses the
    small eigenvalues. Restored on exit.
    """
    import torch

    with _precision_lock:
        before = torch.get_float32_matmul_precision()
        if before != "highest":
            torch.set_float32_matmul_precision("highest")
    try:
        yield
    finally:
        if before != "highest":
            with _precision_lock:
                torch.set_float32_matmul_precision(before)


def gram(stack: torch.Tensor, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """(slices, k, k) Gram matrices on the smaller side k, accumulated block by block."""
    import torch

    slices, rows, cols = (int(s) for s in stack.shape)
    tall = rows >= cols
    side, length = (cols, rows) if tall else (rows, cols)
    out = torch.zeros(slices, side, side, dtype=dtype, device=device)
    step = max(1, BLOCK_ELEMENTS // max(1, slices * side))
    for start in range(0, length, step):
        part = stack[:, start : start + step, :] if tall else stack[:, :, start : start + step]
        block = part.to(device=device, dtype=dtype)
        if tall:
            out.baddbmm_(block.mT, block)
        else:
            out.baddbmm_(block, block.mT)
    return out


@dataclass(frozen=True)
class Spectrum:
    """Sorted eigenvalues (float64, WW-normalised) and a bound on their absolute error."""

    evals: np.ndarray
    noise: float
    precision: str


def _values(g: torch.Tensor, eval_scale: float) -> np.ndarray:
    import numpy as np
    import torch

    with torch.no_grad():
        evals = torch.linalg.eigvalsh(g)
    values = evals.flatten().to("cpu", torch.float64).numpy()
    # Zero eigenvalues (dead units, rank-deficient layers) come out as rounding noise of
    # either sign; an SVD squares them to >= 0, and so do we.
    np.maximum(values, 0.0, out=values)
    values *= eval_scale
    values.sort()
    return values


def spectra(stack: torch.Tensor, eval_scale: float, device: torch.device) -> Iterator[Spectrum]:
    """A fast spectrum, then the exact one; the caller stops at the first that is good enough.

    1. FAST: float32 Gram, float32 eigvalsh. Error bound FAST_NOISE * u32 * sqrt(k) * top.
    2. EXACT: float64 Gram and eigvalsh, as precise as WeightWatcher's float64 SVD (noise 0).
    A middle rung (the float32 Gram with a float64 eigvalsh, ~1e-8 of the top) was measured
    and dropped: it settled only ~40% of the layers the fast rung could not, and costs ~60%
    of the exact rung, so on average it made escalations slower.
    Spectra of at most EXACT_BELOW_EVALS eigenvalues start at EXACT: it costs nothing.
    """
    import torch

    slices, rows, cols = (int(s) for s in stack.shape)
    side = min(rows, cols)
    if slices * side > EXACT_BELOW_EVALS:
        fast = _values(gram(stack, torch.float32, device), eval_scale)
        yield Spectrum(fast, FAST_NOISE * U32 * math.sqrt(side) * float(fast[-1]), FAST)
    # A large float64 Gram and eigvalsh's copy of it are ~4x the float32 working set: one
    # at a time across the analysis threads, so escalations cannot stack up in memory.
    with _EXACT_SLOT if slices * side * side >= EXACT_SERIAL_ELEMENTS else contextlib.nullcontext():
        exact = _values(gram(stack, torch.float64, device), eval_scale)
    yield Spectrum(exact, 0.0, EXACT)


def eigenvalues(stack: torch.Tensor, eval_scale: float, precision: str, device: torch.device) -> np.ndarray:
    """Sorted eigenvalues of W^T W pooled over the slices at one precision (FAST or EXACT)."""
    import torch

    dtype = torch.float32 if precision == FAST else torch.float64
    return _values(gram(stack, dtype, device), eval_scale)
