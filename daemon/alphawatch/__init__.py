"""alphawatch: judge checkpoint health without test data.

Importing this package must stay cheap (no torch, no weightwatcher): the daemon's
main process and training code import it. Heavy names are resolved lazily.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["NetworkHealthAnalyzer", "__version__"]


def __getattr__(name: str) -> Any:
    if name == "NetworkHealthAnalyzer":
        from alphawatch.api import NetworkHealthAnalyzer

        return NetworkHealthAnalyzer
    raise AttributeError(f"module 'alphawatch' has no attribute {name!r}")
