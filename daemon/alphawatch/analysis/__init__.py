"""Analysis: pure functions from tensors to the result schema (docs/CONTRACTS.md).

`analyze_checkpoint` and `analyze_network` are re-exported lazily, so `import
alphawatch.analysis` stays free of torch and weightwatcher until one of them is used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from alphawatch.analysis.options import AnalysisOptions

if TYPE_CHECKING:
    from alphawatch.analysis.engine import analyze_checkpoint, analyze_network

__all__ = ["AnalysisOptions", "analyze_checkpoint", "analyze_network"]

_LAZY = {"analyze_checkpoint", "analyze_network"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from alphawatch.analysis import engine

        return getattr(engine, name)
    raise AttributeError(f"module 'alphawatch.analysis' has no attribute {name!r}")
