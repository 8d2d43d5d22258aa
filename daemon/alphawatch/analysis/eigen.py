"""Eigenvalues of W^T W for a unit's stack of matrices, in float64, cheaper than an SVD.

Why not WeightWatcher's way: it runs a float64 SciPy SVD of every matrix (90-99% of its
time). The Gram matrix on the smaller side followed by a symmetric eigensolver gives the same
eigenvalues (to ~1e-13 of the largest) for a fraction of the work:

- On the CPU the Gram is BLAS `syrk`, which computes one triangle only: half the flops of a
  matrix product (1.4-1.8x faster than torch's product, float64, measured in bench/).
- Then a symmetric eigensolver, eigenvalues only: OpenBLAS's `dsyev` up to a side of
  OPENBLAS_EIGEN_MAX, torch's `eigvalsh` (MKL `syevd`) above it, whichever was faster at
  that size here; OpenBLAS's `syevd` and its two-stage variant were 1.3-2.5x slower at 4096.
  The BLAS/LAPACK calls go through lapack.py, which releases the GIL (SciPy's wrappers don't).

Why float64 only: a float32 rung, escalating to float64 when its rounding could change the
fit, was measured in every benchmark case and was never faster overall. Half of a trained
transformer's layers and most freshly initialised ones escalated (WeightWatcher's xmin choice
turns on differences of ~1e-6 in the KS distance), and paying both rungs cost more than the
float32 rung saved. In float64 our xmin is WeightWatcher's, always.

The Gram is accumulated over blocks of rows (or columns) converted one block at a time, so
a bf16/fp16 weight, or a memory-mapped one, is never copied whole at float64.

On CUDA (`device` "auto" with a GPU, or "cuda[:N]") the same computation runs there with
torch's product, one slice at a time; the blocks are moved one at a time.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING

from alphawatch.analysis import lapack

if TYPE_CHECKING:
    import numpy as np
    import torch

DEVICES_HELP = "auto, cpu, cuda or cuda:N"
# Elements of one converted block (32 MiB at float64); keeps the transient copy small.
BLOCK_ELEMENTS = 1 << 22
# Up to this side, OpenBLAS's dsyev (SciPy's) beat MKL's syevd (torch's) by ~17% on one
# thread (768: 45 vs 54 ms, 1024: 103 vs 124 ms); above it MKL switches to a faster
# reduction (1280: 125 vs 186 ms, 4096: 3.5 vs 10.6 s).
OPENBLAS_EIGEN_MAX = 1024


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
def blas_threads(threads: int) -> Iterator[None]:
    """torch and SciPy's BLAS at `threads` threads each, restored on exit (layers.py: when)."""
    import scipy.linalg.blas  # noqa: F401  (loaded first, so threadpoolctl sees its OpenBLAS)
    import torch
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with threadpool_limits(limits=threads, user_api="blas"):
            yield
    finally:
        torch.set_num_threads(before)


class NonFiniteWeights(ValueError):
    """The matrix holds a NaN or an Inf."""


def _blocks(matrix: torch.Tensor) -> Iterator[tuple[torch.Tensor, bool]]:
    """(block, tall) slices along the longer side, at most BLOCK_ELEMENTS each."""
    rows, cols = (int(s) for s in matrix.shape)
    tall = rows >= cols
    step = max(1, BLOCK_ELEMENTS // max(1, min(rows, cols)))
    for first in range(0, max(rows, cols), step):
        yield (matrix[first : first + step, :] if tall else matrix[:, first : first + step]), tall


_SCRATCH = threading.local()


def _float64_scratch(elements: int) -> torch.Tensor:
    """This thread's float64 buffer for converted blocks, reused from block to block and layer
    to layer: a fresh one per block paid its page faults every time. Grams, one thread, best of
    5: 768x768 11.1 -> 9.9 ms, 3072x768 37.9 -> 35.8 ms, 30522x384 106.8 -> 100.6 ms."""
    import torch

    buffer = getattr(_SCRATCH, "buffer", None)
    if buffer is None or buffer.numel() < elements:
        buffer = _SCRATCH.buffer = torch.empty(elements, dtype=torch.float64)
    return buffer[:elements]


def _gram_into(c: np.ndarray, matrix: torch.Tensor) -> None:
    """c += the lower triangle of `matrix`'s Gram on its smaller side, block by block."""
    for block, tall in _blocks(matrix):
        converted = _float64_scratch(block.numel()).view(block.shape).copy_(block)
        a = converted.numpy().T  # Fortran-ordered, read in place
        # tall: a a^T = block^T block; wide: a^T a = block block^T.
        lapack.syrk_lower(c, a, transposed=not tall)


def _gram_cpu(stack: torch.Tensor) -> torch.Tensor:
    """Lower triangles of the float64 Gram matrices, by syrk (the upper triangle is zero)."""
    import numpy as np
    import torch

    slices, rows, cols = (int(s) for s in stack.shape)
    side = min(rows, cols)
    out = np.zeros((slices, side, side)).transpose(0, 2, 1)  # each slice Fortran-ordered
    for s in range(slices):
        _gram_into(out[s], stack[s])
    return torch.from_numpy(out)


def _gram_torch(stack: torch.Tensor, device: torch.device) -> torch.Tensor:
    import torch

    slices, rows, cols = (int(s) for s in stack.shape)
    side = min(rows, cols)
    out = torch.zeros(slices, side, side, dtype=torch.float64, device=device)
    for s in range(slices):
        for block, tall in _blocks(stack[s]):
            part = block.to(device=device, dtype=torch.float64)
            left, right = (part.mT, part) if tall else (part, part.mT)
            out[s].addmm_(left, right)
    return out


def gram(stack: torch.Tensor, device: torch.device) -> torch.Tensor:
    """(slices, k, k) float64 Gram matrices on the smaller side k; the lower triangle is valid."""
    return _gram_cpu(stack) if device.type == "cpu" else _gram_torch(stack, device)


def eigenvalues(stack: torch.Tensor, eval_scale: float, device: torch.device) -> np.ndarray:
    """Sorted float64 eigenvalues of W^T W pooled over the slices, WW-normalised."""
    import numpy as np
    import torch

    with torch.no_grad():
        g = gram(stack, device)
        # Every weight is in exactly one diagonal entry (a sum of squares), so a NaN or Inf
        # anywhere shows there: one check of k numbers instead of a pass over the weights.
        if not bool(torch.isfinite(g.diagonal(dim1=-2, dim2=-1)).all()):
            raise NonFiniteWeights
        if device.type == "cpu" and g.shape[-1] <= OPENBLAS_EIGEN_MAX:
            values = np.concatenate([lapack.eigvalsh_lower(s) for s in g.numpy()])
        else:
            values = torch.linalg.eigvalsh(g, UPLO="L").flatten().to("cpu", torch.float64).numpy()
    # Zero eigenvalues (dead units, rank-deficient layers) come out as rounding noise of
    # either sign; an SVD squares them to >= 0, and so do we.
    np.maximum(values, 0.0, out=values)
    values *= eval_scale
    values.sort()
    return values
