"""One checkpoint file in, one CheckpointResult out: the path every caller takes.

`alphawatch analyze`, the daemon's worker and the Python API all call `analyze_file`, so a
file is judged the same way everywhere: the same safe loading, the same network selection,
and the same failure reason for the same problem (a file holding none of the requested
networks is `no_weights` in the CLI *and* in the daemon). Every failure leaves as a
`CheckpointError` whose `reason` is one of `errors.REASONS`; nothing else escapes, so
callers need exactly one `except`.

torch is imported on first use (through the loader and the engine), not on import.
"""

from __future__ import annotations

from pathlib import Path

from alphawatch.analysis.options import AnalysisOptions
from alphawatch.errors import CheckpointError
from alphawatch.results import CheckpointResult

# What allocators say when memory runs out (torch raises RuntimeError, not MemoryError).
_OOM_MARKERS = ("can't allocate memory", "not enough memory", "out of memory", "unable to allocate")


def is_out_of_memory(exc: BaseException) -> bool:
    """MemoryError, or an allocator's RuntimeError that means the same."""
    return isinstance(exc, MemoryError) or (
        isinstance(exc, RuntimeError) and any(m in str(exc).lower() for m in _OOM_MARKERS))


def analyze_file(path: Path, options: AnalysisOptions, *, root: Path | None = None) -> CheckpointResult:
    """Load `path` safely (refusing links out of `root`) and analyze the selected networks."""
    try:
        return _analyze(Path(path), options, root)
    except CheckpointError:
        raise
    except Exception as exc:
        if is_out_of_memory(exc):
            raise CheckpointError("out_of_memory", f"{path}: ran out of memory while analyzing") from None
        raise CheckpointError(
            "internal_error", f"{path}: analysis failed: {type(exc).__name__}: {str(exc)[:300]}") from exc


def _analyze(path: Path, options: AnalysisOptions, root: Path | None) -> CheckpointResult:
    from alphawatch.analysis import analyze_checkpoint
    from alphawatch.analysis.engine import selected_networks
    from alphawatch.checkpoints import load

    ckpt = load(path, root=root, network_patterns=dict(options.network_patterns) or None)
    present, missing = selected_networks(list(ckpt.networks), options)
    if not present:
        raise CheckpointError(
            "no_weights", f"{path}: none of the requested networks ({', '.join(missing)}) is in this "
            f"file; it has: {', '.join(ckpt.networks)}")
    return analyze_checkpoint(ckpt, options)
