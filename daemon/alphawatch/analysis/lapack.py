"""SciPy's own BLAS `dsyrk` and LAPACK `dsyev`, called so that they release the GIL.

Why not `scipy.linalg.blas` / `scipy.linalg.eigh`: their f2py wrappers hold the GIL for the
whole call. With two analysis threads, one building a Gram blocked the other from even
entering its eigensolver (measured: MiniLM-L6 on two threads took 0.70 s with SciPy's dsyrk,
0.55 s with this one and nothing else changed). The same functions, from the same OpenBLAS,
are reachable through SciPy's public Cython API (`scipy.linalg.cython_blas` /
`cython_lapack`); a ctypes call through their function pointers drops the GIL meanwhile.

Arrays are checked here (Fortran order, float64, shapes) because a wrong leading dimension
would read or write outside them.
"""

from __future__ import annotations

import ctypes
import functools
from types import ModuleType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

_INT, _DOUBLE = ctypes.c_int, ctypes.c_double


def _function(module: ModuleType, name: str, arguments: int) -> Any:
    """The C function `name` of a SciPy Cython module, callable through ctypes (GIL released).

    Every argument is a pointer: char* for the flags, int*/double* for the rest (Fortran ABI).
    """
    capsule = module.__pyx_capi__[name]
    get_name = ctypes.pythonapi.PyCapsule_GetName
    get_name.restype, get_name.argtypes = ctypes.c_char_p, [ctypes.py_object]
    get_pointer = ctypes.pythonapi.PyCapsule_GetPointer
    get_pointer.restype, get_pointer.argtypes = ctypes.c_void_p, [ctypes.py_object, ctypes.c_char_p]
    prototype = ctypes.CFUNCTYPE(None, *[ctypes.c_void_p] * arguments)
    return prototype(get_pointer(capsule, get_name(capsule)))


@functools.cache
def _dsyrk() -> Any:
    # dsyrk(uplo, trans, n, k, alpha, a, lda, beta, c, ldc)
    import scipy.linalg.cython_blas as cython_blas

    return _function(cython_blas, "dsyrk", 10)


@functools.cache
def _dsyev() -> Any:
    # dsyev(jobz, uplo, n, a, lda, w, work, lwork, info)
    import scipy.linalg.cython_lapack as cython_lapack

    return _function(cython_lapack, "dsyev", 9)


def _fortran_float64(*arrays: np.ndarray) -> None:
    import numpy as np

    for a in arrays:
        if not (a.flags.f_contiguous and a.dtype == np.float64):
            raise ValueError("BLAS/LAPACK arrays must be Fortran-ordered float64")


def _ref(ctype: Any, value: Any) -> Any:
    return ctypes.byref(ctype(value))


def syrk_lower(c: np.ndarray, a: np.ndarray, transposed: bool) -> None:
    """c += a a^T (a^T a when `transposed`), lower triangle only; c is k x k."""
    _fortran_float64(a, c)
    side, inner = (a.shape[1], a.shape[0]) if transposed else a.shape
    if c.shape != (side, side):
        raise ValueError(f"syrk: output {c.shape} for a {a.shape} product")
    _dsyrk()(
        b"L", b"T" if transposed else b"N", _ref(_INT, side), _ref(_INT, inner),
        _ref(_DOUBLE, 1.0), a.ctypes.data, _ref(_INT, a.shape[0]),
        _ref(_DOUBLE, 1.0), c.ctypes.data, _ref(_INT, side),
    )  # fmt: skip


def eigvalsh_lower(a: np.ndarray) -> np.ndarray:
    """Ascending eigenvalues of the symmetric matrix whose lower triangle `a` holds.

    `a` is overwritten (LAPACK works in place). Raises numpy's LinAlgError as eigvalsh does.
    """
    import numpy as np

    _fortran_float64(a)
    n = a.shape[0]
    if a.shape != (n, n):
        raise ValueError(f"eigvalsh: {a.shape} is not square")
    w = np.empty(n)
    info = _INT(0)
    size = np.empty(1)

    def call(work: np.ndarray, lwork: int) -> None:
        _dsyev()(
            b"N", b"L", _ref(_INT, n), a.ctypes.data, _ref(_INT, max(1, n)), w.ctypes.data,
            work.ctypes.data, _ref(_INT, lwork), ctypes.byref(info),
        )  # fmt: skip
        if info.value != 0:
            raise np.linalg.LinAlgError(f"dsyev failed (info {info.value})")

    call(size, -1)  # workspace query
    call(np.empty(max(1, int(size[0]))), max(1, int(size[0])))
    return w
