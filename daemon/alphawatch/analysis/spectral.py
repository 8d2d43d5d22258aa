"""Per-layer spectral metrics: WeightWatcher's numbers, computed faster.

The only module that imports `weightwatcher`. Why the split of work:

- Eigenvalues (eigen.py): WeightWatcher on CPU runs a float64 SciPy SVD (90-99% of its
  time). We take the float64 Gram matrix on the smaller side (BLAS syrk) and `eigvalsh`: the
  same eigenvalues to ~1e-13, for a fraction of the work.
- Fit (powerlaw.py): WeightWatcher's default `WW_powerlaw` fit, vectorised, choosing the same
  xmin and computing alpha and D with WeightWatcher's own expressions. Spectra with fewer
  than 20 eigenvalues above the floor, and any spectrum where the shortcut cannot vouch for
  its choice, go to WeightWatcher's own `fit_powerlaw`, called exactly as the default
  `analyze()` calls it.
- Norm metrics: `stable_rank` and `log_spectral_norm` as WW's `apply_norm_metrics`
  (spectral norm = largest eigenvalue of W^T W, i.e. sigma_max squared).
- Skip rules as WW's `layer_supported` with analyze() defaults (pool=True).

Importing weightwatcher sets the root logger to INFO with a stderr handler, silences all
warnings process-wide and prints; `_weightwatcher()` undoes all of that, and every fit runs
with stdout redirected and WW's logger muted.
"""

from __future__ import annotations

import contextlib
import functools
import io
import logging
import math
import sys
import threading
import warnings
from collections.abc import Iterator
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np

from alphawatch.analysis import eigen, powerlaw
from alphawatch.analysis.matrices import Unit
from alphawatch.results import FIT_FAILED_REASON, FLAT_REASON, NAN_REASON

if TYPE_CHECKING:
    import torch

# WeightWatcher analyze() defaults (weightwatcher/constants.py, 0.7.7); checked in tests.
MIN_EVALS = 8
MAX_EVALS = 15000
MAX_N = 50000
# weightwatcher.constants.EVALS_THRESH: eigenvalues at or below it are not fitted.
EVALS_THRESH = 1e-5
# A tail whose largest eigenvalue is within this fraction of xmin is flat: the fit's alpha
# (>= 1 + 1/FLAT_TAIL_RTOL, i.e. over ~1000) is then set by float rounding, not by the weights.
FLAT_TAIL_RTOL = 1e-3


# sys.stdout/stderr, the root logger and the warnings filters are process-wide. Two analysis
# threads inside _contained at once would each restore what the other had set: the last to
# leave put the first one's sink back for good, and the process's output vanished (the CLI's
# whole report, with worker.threads 2). So one thread at a time; re-entrant for nesting.
_CONTAINED = threading.RLock()


@contextlib.contextmanager
def _contained() -> Iterator[None]:
    """Run WeightWatcher code without it touching our stdout, root logger or warnings."""
    root = logging.getLogger()
    sink = io.StringIO()
    with (
        _CONTAINED,
        warnings.catch_warnings(),
        contextlib.redirect_stdout(sink),
        contextlib.redirect_stderr(sink),
    ):
        level, handlers = root.level, list(root.handlers)
        warnings.simplefilter("ignore")
        try:
            yield
        finally:
            root.handlers[:] = handlers  # drops the handler logging.basicConfig() added
            root.setLevel(level)


@functools.cache
def _weightwatcher() -> ModuleType:
    """Import weightwatcher once, with its import-time side effects contained."""
    with _contained():
        import weightwatcher  # noqa: F401  (side effects contained above)
        import weightwatcher.weightwatcher as ww_module
    ww_logger = logging.getLogger("weightwatcher")
    ww_logger.setLevel(logging.CRITICAL)
    ww_logger.propagate = False
    if not any(isinstance(h, logging.NullHandler) for h in ww_logger.handlers):
        ww_logger.addHandler(logging.NullHandler())  # keep logging.lastResort off stderr
    return ww_module


@functools.cache
def _watcher() -> Any:
    """One model-less WeightWatcher instance; only its `fit_powerlaw` method is used."""
    ww = _weightwatcher()
    with _contained():
        return ww.WeightWatcher()


def eigenvalues(unit: Unit, device: torch.device | None = None) -> np.ndarray:
    """Sorted eigenvalues of W^T W pooled over the unit's slices, float64, WW-normalised."""
    import torch

    assert unit.stack is not None
    return eigen.eigenvalues(unit.stack, unit.eval_scale, device or torch.device("cpu"))


def _finite(x: Any) -> float | None:
    if x is None:
        return None
    v = float(x)
    return v if math.isfinite(v) else None


def skip_reason(unit: Unit) -> str | None:
    """WeightWatcher's layer_supported() rules (pool=True), as a reason, or None."""
    if unit.skip_reason is not None or unit.stack is None:
        return unit.skip_reason or "not a weight matrix"
    rows, cols = int(unit.stack.shape[1]), int(unit.stack.shape[2])
    n, m = max(rows, cols), min(rows, cols)
    num_evals = m * unit.num_slices
    if num_evals < MIN_EVALS:
        return f"fewer than {MIN_EVALS} eigenvalues (min_evals): {num_evals}"
    if num_evals > MAX_EVALS:
        return f"more than {MAX_EVALS} eigenvalues (max_evals): {num_evals}"
    if n > MAX_N:
        return f"larger dimension {n} over {MAX_N} (max_N)"
    return None


def ww_fit_powerlaw(evals: np.ndarray) -> dict[str, Any]:
    """WeightWatcher's own default power-law fit; alpha -1 / status failed as WW reports it.

    Arguments are those `analyze()` passes with its defaults (fit=PL, pl_package="ww",
    no fix_fingers, xmax=None). The eigenvalue floor is WW's CPU EVALS_THRESH (1e-5) even on
    a CUDA machine, where WW itself would switch to a half-precision floor: our spectrum is
    float64 everywhere, so the CPU floor is the right one.
    """
    watcher = _watcher()  # first: it imports weightwatcher with its side effects contained
    from weightwatcher import constants as c

    with _contained(), np.errstate(all="ignore"):
        alpha, _lam, xmin, _xmax, d, _sigma, spikes, _f, _raw, status, _w = watcher.fit_powerlaw(
            evals,
            xmin=None,
            xmax=c.DEFAULT_XMAX,
            plot=False,
            savefig=False,
            thresh=c.EVALS_THRESH,
            fix_fingers=False,
            xmin_max=None,
            max_fingers=c.DEFAULT_MAX_FINGERS,
            finger_thresh=c.DEFAULT_FINGER_THRESH,
            fit_type=c.PL,
            pl_package=c.WW_POWERLAW_PACKAGE,
        )
    return _fit_fields(status == c.SUCCESS, alpha, d, xmin, spikes)


def _fit_fields(success: bool, alpha: Any, d: Any, xmin: Any, spikes: Any) -> dict[str, Any]:
    ok = success and alpha != -1 and _finite(alpha) is not None
    return {
        "ok": ok,
        "alpha": _finite(alpha) if ok else None,
        "D": _finite(d) if ok else None,
        "xmin": _finite(xmin) if ok else None,
        "num_pl_spikes": int(spikes) if ok else None,
    }


def fit_powerlaw(evals: np.ndarray) -> dict[str, Any]:
    """The same fit as `ww_fit_powerlaw`, through the vectorised shortcut where it applies.

    As WW's fit_powerlaw: eigenvalues above EVALS_THRESH are fitted, and num_pl_spikes counts
    all eigenvalues >= xmin. Small spectra (WW's small-N fitter) and spectra where the
    shortcut cannot vouch for its choice are handed to WeightWatcher itself.
    """
    # WeightWatcher is imported on the first fit even when the shortcut answers: the worker's
    # warm-up fit must leave it loaded, so that its memory is in the worker's baseline (an
    # import mid-request would count against the request's memory limit).
    _watcher()
    data = np.sort(np.asarray(evals[evals > EVALS_THRESH], dtype=np.float64))
    if data.size < powerlaw.SMALL_N_CUTOFF:
        return ww_fit_powerlaw(evals)
    tail = powerlaw.fit_tail(data)
    if tail is None:
        return ww_fit_powerlaw(evals)
    spikes = int(np.count_nonzero(evals >= tail.xmin))
    return _fit_fields(True, tail.alpha, tail.D, tail.xmin, spikes)


def flat_tail(evals: np.ndarray, xmin: float | None) -> bool:
    """True when the fitted tail is (numerically) a single eigenvalue repeated.

    SB3's PPO/A2C initialise hidden layers orthogonally: every singular value is the gain,
    so the fit returns an alpha in the millions set by rounding (WW's float64 SVD and a
    float32 spectrum gave 3.4e6 and 4.5e6). Such an alpha would swamp every mean.
    """
    if xmin is None or xmin <= 0:
        return False
    return float(evals.max()) <= xmin * (1.0 + FLAT_TAIL_RTOL)


def norm_metrics(evals: np.ndarray) -> dict[str, float | None]:
    """stable_rank and log_spectral_norm exactly as WW's apply_norm_metrics."""
    with np.errstate(all="ignore"):
        norm = float(np.sum(evals))
        spectral = float(np.max(evals))
        return {
            "stable_rank": _finite(norm / spectral) if spectral > 0 else None,
            "log_spectral_norm": _finite(np.log10(spectral)) if spectral > 0 else None,
        }


def _all_finite(stack: torch.Tensor) -> bool:
    """No NaN/Inf; float8 (FP8-quantized checkpoints) has no isfinite kernel, so it is upcast."""
    import torch

    if stack.dtype.itemsize == 1:
        stack = stack.to(torch.float16)
    return bool(torch.isfinite(stack).all())


def _needs_own_finite_check(unit: Unit) -> bool:
    """float64 weights over ~1e154 would overflow the Gram's diagonal: checked directly."""
    import torch

    return unit.stack is not None and unit.stack.dtype == torch.float64


def analyze_unit(unit: Unit, device: torch.device | None = None) -> dict[str, Any]:
    """The spectral fields of one layer entry (see CONTRACTS.md), never NaN."""
    out: dict[str, Any] = {
        "alpha": None,
        "stable_rank": None,
        "log_spectral_norm": None,
        "D": None,
        "xmin": None,
        "num_pl_spikes": None,
        "num_evals": None,
        "status": "ok",
        "reason": None,
    }
    reason = skip_reason(unit)
    # Analyzed layers are checked for NaN/Inf on their Gram matrix (eigen.NonFiniteWeights).
    if (reason is not None or _needs_own_finite_check(unit)) and unit.stack is not None:
        if not _all_finite(unit.stack):
            out.update(status="failed", reason=NAN_REASON)
            return out
    if reason is not None:
        out.update(status="skipped", reason=reason)
        return out
    try:
        evals = eigenvalues(unit, device)
    except eigen.NonFiniteWeights:
        out.update(status="failed", reason=NAN_REASON)
        return out
    fit = fit_powerlaw(evals)
    out["num_evals"] = int(evals.size)
    out.update(norm_metrics(evals))
    if not fit.pop("ok"):
        out.update(status="failed", reason=FIT_FAILED_REASON)
        return out
    if flat_tail(evals, fit["xmin"]):
        out.update(status="failed", reason=FLAT_REASON)
        return out
    out.update(fit)
    return out


def weightwatcher_version() -> str:
    """Version of the wrapped WeightWatcher (for reports)."""
    _weightwatcher()
    return str(getattr(sys.modules.get("weightwatcher"), "__version__", "unknown"))
