"""spectral.py: skip rules, NaN handling, WW constants, and containment of WeightWatcher side effects."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
import warnings

import pytest
import torch
from alphawatch.analysis import spectral
from alphawatch.analysis.matrices import Unit, units_for


def _unit(w: torch.Tensor, name: str = "fc.weight") -> Unit:
    (unit,) = units_for(name, name, w, {name: w})
    return unit


def test_rules_are_weightwatchers_defaults() -> None:
    spectral._weightwatcher()
    from weightwatcher import constants

    assert spectral.MIN_EVALS == constants.DEFAULT_MIN_EVALS
    assert spectral.MAX_EVALS == constants.DEFAULT_MAX_EVALS
    assert spectral.MAX_N == constants.DEFAULT_MAX_N
    assert constants.DEFAULT_POOL is True


@pytest.mark.parametrize(
    ("shape", "reason"),
    [
        ((6, 256), "fewer than 8 eigenvalues (min_evals)"),
        ((1, 256), "fewer than 8 eigenvalues (min_evals)"),
        ((50001, 8), "over 50000 (max_N)"),
    ],
)
def test_skip_rules(shape: tuple[int, int], reason: str) -> None:
    out = spectral.analyze_unit(_unit(torch.ones(shape)))
    assert out["status"] == "skipped"
    assert reason in out["reason"]
    assert out["alpha"] is None


def test_max_evals_skipped_before_any_svd() -> None:
    """A conv whose pooled spectrum would have 64*256 = 16384 > 15000 eigenvalues."""
    out = spectral.analyze_unit(_unit(torch.randn(64, 64, 16, 16), "conv.weight"))
    assert out["status"] == "skipped"
    assert "max_evals" in out["reason"]


def test_eight_eigenvalues_is_enough() -> None:
    out = spectral.analyze_unit(_unit(torch.randn(8, 64, generator=torch.Generator().manual_seed(0))))
    assert out["status"] == "ok"
    assert out["num_evals"] == 8


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_nan_inf_weights_fail_without_nan_in_output(bad: float) -> None:
    w = torch.randn(64, 64)
    w[3, 5] = bad
    out = spectral.analyze_unit(_unit(w))
    assert out["status"] == "failed"
    assert out["reason"] == "NaN/Inf weights"
    assert all(v is None for k, v in out.items() if k not in ("status", "reason"))


@pytest.mark.parametrize(("shape", "dtype"), [
    ((300, 40), torch.float32), ((40, 300), torch.bfloat16), ((64, 64), torch.float64),
    ((4, 300), torch.float32),  # skipped (fewer than 8 eigenvalues): checked all the same
])  # fmt: skip
def test_one_bad_weight_anywhere_fails_the_layer(shape: tuple[int, int], dtype: torch.dtype) -> None:
    """The NaN/Inf check of analyzed layers reads the Gram's diagonal: every corner must show."""
    for row, col in [(0, 0), (shape[0] - 1, shape[1] - 1), (shape[0] // 2, 1)]:
        for bad in (float("nan"), float("inf")):
            w = torch.randn(shape, generator=torch.Generator().manual_seed(2)).to(dtype)
            w[row, col] = bad
            out = spectral.analyze_unit(_unit(w))
            assert (out["status"], out["reason"]) == ("failed", "NaN/Inf weights"), (row, col, bad)


def test_zero_matrix_fails_and_has_no_norms() -> None:
    out = spectral.analyze_unit(_unit(torch.zeros(32, 32)))
    assert out["status"] == "failed"
    assert out["stable_rank"] is None and out["log_spectral_norm"] is None


def test_orthogonal_init_is_a_failed_fit_not_an_alpha_in_the_millions() -> None:
    """SB3 PPO/A2C hidden layers start orthogonal: all eigenvalues equal, no power law."""
    w = torch.empty(64, 64)
    torch.nn.init.orthogonal_(w, gain=2**0.5, generator=torch.Generator().manual_seed(0))
    out = spectral.analyze_unit(_unit(w))
    assert out["status"] == "failed"
    assert out["reason"] == spectral.FLAT_REASON
    assert out["alpha"] is None
    assert out["stable_rank"] == pytest.approx(64, rel=1e-4)  # the norms are still meaningful


def test_slightly_trained_orthogonal_layer_is_fitted() -> None:
    w = torch.empty(64, 64)
    torch.nn.init.orthogonal_(w, generator=torch.Generator().manual_seed(0))
    w += 0.05 * torch.randn(64, 64, generator=torch.Generator().manual_seed(1))
    out = spectral.analyze_unit(_unit(w))
    assert out["status"] == "ok"
    assert out["alpha"] is not None and out["alpha"] < 1000


def test_half_precision_weights_are_analyzed() -> None:
    w = torch.randn(128, 64, generator=torch.Generator().manual_seed(3))
    full = spectral.analyze_unit(_unit(w))
    half = spectral.analyze_unit(_unit(w.to(torch.bfloat16)))
    assert half["status"] == "ok"
    assert half["stable_rank"] == pytest.approx(full["stable_rank"], rel=0.02)


@pytest.mark.parametrize("dtype", [torch.float8_e4m3fn, torch.float8_e5m2])
def test_float8_weights_are_analyzed_and_nan_still_caught(dtype: torch.dtype) -> None:
    """FP8-quantized checkpoints: torch has no isfinite kernel for float8."""
    w = torch.randn(128, 64, generator=torch.Generator().manual_seed(3))
    out = spectral.analyze_unit(_unit(w.to(dtype)))
    assert out["status"] == "ok" and out["alpha"] is not None
    w[0, 0] = float("nan")
    assert spectral.analyze_unit(_unit(w.to(dtype)))["reason"] == "NaN/Inf weights"


def test_fits_print_nothing_and_leave_logging_and_warnings_alone(capfd: pytest.CaptureFixture[str]) -> None:
    """Small spectra make WW print 'SMALL N PL FIT'; none of it may reach our stdout/stderr."""
    root = logging.getLogger()
    level, handlers, filters = root.level, list(root.handlers), list(warnings.filters)
    gen = torch.Generator().manual_seed(1)
    for rows in (12, 19, 64):  # < 20 eigenvalues takes WW's small-N path, which prints
        out = spectral.analyze_unit(_unit(torch.randn(rows, 128, generator=gen)))
        assert out["status"] == "ok"
    captured = capfd.readouterr()
    assert captured.out == "" and captured.err == ""
    assert root.level == level and root.handlers == handlers
    assert list(warnings.filters) == filters


def test_two_threads_fitting_at_once_leave_stdout_and_stderr_as_they_were() -> None:
    """The first thread is still inside when the second wants in. Unserialised, the second
    saved the first one's sink as "the" stdout and put it back last: output gone for good."""
    import threading

    first_inside, second_inside, first_left = threading.Event(), threading.Event(), threading.Event()

    def first() -> None:
        with spectral._contained():
            first_inside.set()
            second_inside.wait(0.5)  # the second may not get in while the first is here
        first_left.set()

    def second() -> None:
        first_inside.wait()
        with spectral._contained():
            second_inside.set()
            first_left.wait(0.5)  # unserialised, the first leaves while the second is inside

    before = (sys.stdout, sys.stderr)
    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        after = (sys.stdout, sys.stderr)
    finally:
        sys.stdout, sys.stderr = before  # keep pytest's capture working when this fails
    assert after == before

def test_import_side_effects_contained_in_fresh_process() -> None:
    """Fresh interpreter: weightwatcher's import-time basicConfig/simplefilter/prints must not leak."""
    script = textwrap.dedent(
        """
        import logging, sys, warnings, torch
        root = logging.getLogger()
        root.setLevel(logging.ERROR)
        before = (root.level, list(root.handlers), list(warnings.filters))
        from alphawatch.analysis import analyze_network, AnalysisOptions
        assert "weightwatcher" not in sys.modules
        sd = {"a.weight": torch.randn(12, 64), "b.weight": torch.randn(64, 64)}
        r = analyze_network(sd, {}, AnalysisOptions())
        assert "weightwatcher" in sys.modules
        assert [x["status"] for x in r["layers"]] == ["ok", "ok"], r
        after = (root.level, list(root.handlers), list(warnings.filters))
        assert after == before, (before, after)
        logging.getLogger("weightwatcher").warning("must stay quiet")
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""
    assert proc.stderr == ""
