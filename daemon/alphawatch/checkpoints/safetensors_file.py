"""safetensors files: the header now, each tensor through `safe_open` when it is analyzed.

safetensors cannot carry code, so there is nothing to refuse; a damaged header or a
file shorter than its header promises is `truncated` / `not_a_checkpoint`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from alphawatch.checkpoints.complete import safetensors_expected_size
from alphawatch.checkpoints.lazy import LazyTensor
from alphawatch.checkpoints.native_path import native_path
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
    """({tensor name: LazyTensor}, number of non-floating tensors left out).

    Only the header is read here; each tensor is read when analysis asks for it
    (checkpoints/lazy.py), so a multi-GB file never sits in memory whole.
    """
    from safetensors import safe_open

    tensors: dict[str, Any] = {}
    skipped = 0
    try:
        with native_path(path) as native, safe_open(native, framework="pt", device="cpu") as fh:
            for name in natural_order(fh.keys()):
                part = fh.get_slice(name)
                dtype = part.get_dtype()
                if dtype.startswith(_FLOAT_DTYPES):
                    shape = tuple(int(s) for s in part.get_shape())
                    tensors[name] = LazyTensor(shape, _torch_dtype(dtype), _reader(path, display, name))
                else:
                    skipped += 1
    except PermissionError as exc:
        raise CheckpointError("unreadable", f"{display}: permission denied") from exc
    except OSError as exc:
        raise CheckpointError("unreadable", f"{display}: I/O error ({exc.strerror or exc})") from exc
    except Exception as exc:  # SafetensorError and friends are not exported as one type
        raise _invalid(path, display, exc) from exc
    return tensors, skipped


def _invalid(path: Path, display: str | Path, exc: Exception) -> CheckpointError:
    expected = safetensors_expected_size(path)
    cut_off = expected is not None and expected > path.stat().st_size
    reason = "truncated" if cut_off else "not_a_checkpoint"
    return CheckpointError(reason, f"{display}: invalid safetensors file ({str(exc)[:200]})")


def _reader(path: Path, display: str | Path, name: str) -> Any:
    def read() -> Any:
        from safetensors import safe_open

        try:
            with native_path(path) as native, safe_open(native, framework="pt", device="cpu") as fh:
                return fh.get_tensor(name)
        except PermissionError as exc:
            raise CheckpointError("unreadable", f"{display}: permission denied") from exc
        except OSError as exc:
            raise CheckpointError("unreadable", f"{display}: I/O error ({exc.strerror or exc})") from exc
        except Exception as exc:
            raise _invalid(path, display, exc) from exc

    return read


_DTYPES = {
    "F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16",
    "F8_E4M3": "float8_e4m3fn", "F8_E5M2": "float8_e5m2",
}  # fmt: skip


def _torch_dtype(name: str) -> Any:
    import torch

    return getattr(torch, _DTYPES.get(name, "float32"))
