"""safetensors files: read through `safe_open`, one tensor at a time, memory-mapped.

safetensors cannot carry code, so there is nothing to refuse; a damaged header or a
file shorter than its header promises is `truncated` / `not_a_checkpoint`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from alphawatch.checkpoints.complete import safetensors_expected_size
from alphawatch.errors import CheckpointError

_FLOAT_DTYPES = ("F", "BF")  # F16, F32, F64, BF16, F8_* ; not I*, U*, BOOL
_DIGITS = re.compile(r"(\d+)")


def natural_order(names: Iterable[str]) -> list[str]:
    """Names with numbers compared as numbers: `h.2` before `h.10`.

    safetensors stores tensor names sorted as text, which puts layer 10 before layer 2;
    reports list and plot layers in this order, so depth should read top to bottom.
    """
    return sorted(names, key=_natural_key)


def _natural_key(name: str) -> list[tuple[int, int, str]]:
    return [(0, int(p), "") if p.isdigit() else (1, 0, p) for p in _DIGITS.split(name)]


def load_safetensors(path: Path, display: str | Path) -> tuple[dict[str, Any], int]:
    """({tensor name: floating tensor}, number of non-floating tensors left out)."""
    from safetensors import safe_open

    tensors: dict[str, Any] = {}
    skipped = 0
    try:
        with safe_open(str(path), framework="pt", device="cpu") as fh:
            for name in natural_order(fh.keys()):
                dtype = fh.get_slice(name).get_dtype()
                if dtype.startswith(_FLOAT_DTYPES):
                    tensors[name] = fh.get_tensor(name)
                else:
                    skipped += 1
    except PermissionError as exc:
        raise CheckpointError("unreadable", f"{display}: permission denied") from exc
    except OSError as exc:
        raise CheckpointError("unreadable", f"{display}: I/O error ({exc.strerror or exc})") from exc
    except Exception as exc:  # SafetensorError and friends are not exported as one type
        text = str(exc)
        expected = safetensors_expected_size(path)
        cut_off = expected is not None and expected > path.stat().st_size
        reason = "truncated" if cut_off else "not_a_checkpoint"
        raise CheckpointError(reason, f"{display}: invalid safetensors file ({text[:200]})") from exc
    return tensors, skipped
