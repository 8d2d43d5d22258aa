"""lapack.py: SciPy's own dsyrk/dsyev called through ctypes give the same numbers, check
their arrays, and let other threads run meanwhile (the reason the module exists)."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from alphawatch.analysis import lapack


@pytest.mark.parametrize(("rows", "cols"), [(1, 1), (7, 3), (3, 7), (200, 64), (64, 200)])
def test_syrk_accumulates_the_lower_triangle_of_the_gram(rows: int, cols: int) -> None:
    rng = np.random.default_rng(rows * 1000 + cols)
    w = rng.standard_normal((rows, cols))
    side = min(rows, cols)
    start = np.asfortranarray(np.tril(rng.standard_normal((side, side))))
    c = start.copy(order="F")
    # As eigen.py calls it: `a` is the block's transpose, read in place (Fortran order).
    lapack.syrk_lower(c, np.asarray(w).T, transposed=rows < cols)
    gram = w.T @ w if rows >= cols else w @ w.T
    np.testing.assert_allclose(np.tril(c), np.tril(start + gram), rtol=1e-13, atol=1e-12)
    assert np.array_equal(np.triu(c, 1), np.triu(start, 1))  # the upper triangle is not touched


@pytest.mark.parametrize("n", [1, 2, 50, 300])
def test_eigvalsh_lower_matches_numpy(n: int) -> None:
    rng = np.random.default_rng(n)
    w = rng.standard_normal((n, max(1, n // 2)))  # rank-deficient for n > 1
    sym = w @ w.T
    lower = np.asfortranarray(np.tril(sym))  # only the lower triangle is read
    got = lapack.eigvalsh_lower(lower)
    np.testing.assert_allclose(got, np.linalg.eigvalsh(sym), rtol=0, atol=1e-12 * max(1.0, np.abs(sym).max()))
    assert np.all(np.diff(got) >= 0)


def test_arrays_of_the_wrong_layout_or_shape_are_refused() -> None:
    square = np.zeros((4, 4), order="F")
    with pytest.raises(ValueError, match="Fortran"):
        lapack.syrk_lower(square, np.zeros((4, 9)), transposed=False)  # C-ordered input
    with pytest.raises(ValueError, match="Fortran"):
        lapack.eigvalsh_lower(np.zeros((4, 4), dtype=np.float32, order="F"))
    with pytest.raises(ValueError, match="output"):
        lapack.syrk_lower(square, np.zeros((5, 9), order="F"), transposed=False)
    with pytest.raises(ValueError, match="square"):
        lapack.eigvalsh_lower(np.zeros((4, 5), order="F"))


def test_other_threads_run_during_a_call() -> None:
    """SciPy's own wrappers hold the GIL for the whole call; these must not.

    A Python thread counts while the product runs, then for as long again while nothing
    runs. Through SciPy's f2py dsyrk it counted 9% of the idle figure (measured); it must reach 20%.
    """
    a = np.asfortranarray(np.random.default_rng(0).standard_normal((1024, 8192)))
    c = np.zeros((1024, 1024), order="F")
    count, stop = [0], threading.Event()

    def spin() -> None:
        while not stop.is_set():
            count[0] += 1

    thread = threading.Thread(target=spin)
    thread.start()
    try:
        before, started = count[0], time.perf_counter()
        for _ in range(3):
            lapack.syrk_lower(c, a, transposed=False)
        during, took = count[0] - before, time.perf_counter() - started
        before = count[0]
        stop.wait(took)
        idle = count[0] - before
    finally:
        stop.set()
        thread.join()
    assert during >= 0.2 * idle, (during, idle)
