"""Training-framework callbacks that stop a run when alphawatch writes its stop signal.

One module per framework, each an optional extra that imports its framework:

- ``alphawatch.integrations.lightning``   — ``pip install alphawatch[lightning]``
- ``alphawatch.integrations.huggingface`` — ``pip install alphawatch[hf]``
- ``alphawatch.integrations.sb3``         — ``pip install alphawatch[sb3]``

This package itself imports none of them, so importing it is free.
"""

from __future__ import annotations

__all__: list[str] = []
