"""torch.save files (zip and legacy): torch.load with weights_only=True, always.

Every exception torch can raise on a hostile or damaged file is turned into a
CheckpointError naming the file: a zero-byte file is EOFError, a text file KeyError,
a cut zip OSError 22 or RuntimeError, a pickle naming foreign code UnpicklingError.
"""

from __future__ import annotations

import errno
import pickle
import warnings
from pathlib import Path
from typing import Any

from alphawatch.checkpoints.allowlist import allowed_globals
from alphawatch.checkpoints.native_path import native_path
from alphawatch.checkpoints.pickle_scan import legacy_torch_state
from alphawatch.errors import CheckpointError

_UNSAFE_MARKERS = (
    "Unsupported global",
    "unrecognized function",
    "Can only",
    "is blocked",
    "must be imported",
    "Unsupported operand",
    "persistent id",
)


def load_torch_file(path: Path, display: str | Path, *, mmap: bool) -> Any:
    """The object in a torch.save file (tensors on CPU, memory-mapped when `mmap`).

    `mmap` is for the zip format only; without it the file is the legacy format, whose
    cut-off copies torch reports as anything from EOFError to KeyError.
    """
    import torch

    error: CheckpointError
    try:
        with native_path(path) as name, torch.serialization.safe_globals(allowed_globals()), \
                warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return torch.load(name, map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as exc:
        error = unsafe_error(path, display, exc)
    except Exception as exc:
        error = torch_load_error(display, exc)
    if error.reason == "not_a_checkpoint" and not mmap and legacy_torch_state(path) == "truncated":
        error = CheckpointError("truncated", f"{display}: the legacy torch file ends early (cut off)")
    raise error


def load_torch_bytes(data: bytes, display: str) -> Any:
    """The object in an in-memory torch.save blob (SB3's policy.pth lives inside a zip)."""
    import io

    import torch

    try:
        with torch.serialization.safe_globals(allowed_globals()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise unsafe_error(io.BytesIO(data), display, exc) from None
    except Exception as exc:
        raise torch_load_error(display, exc) from exc


def _unsafe_names(source: Any) -> list[str]:
    """Globals the file names outside torch's and our allowlist (zip format only)."""
    import torch

    try:
        with torch.serialization.safe_globals(allowed_globals()):
            return sorted(torch.serialization.get_unsafe_globals_in_checkpoint(source))
    except Exception:
        return []


def unsafe_error(source: Any, display: str | Path, exc: Exception) -> CheckpointError:
    """`unsafe_pickle` with the offending names when they can be listed without loading."""
    text = str(exc)
    if not any(marker in text for marker in _UNSAFE_MARKERS):
        detail = _first_line(text)
        return CheckpointError("not_a_checkpoint", f"{display}: not a valid torch.save pickle ({detail})")
    names = _unsafe_names(source)
    what = f" ({', '.join(names[:5])})" if names else ""
    return CheckpointError(
        "unsafe_pickle",
        f"{display}: the pickle needs code outside alphawatch's allowlist{what}, such as a custom class or a "
        "whole nn.Module; it was not loaded (save model.state_dict() instead)",
    )


def _first_line(text: str) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line[:200]


def torch_load_error(display: str | Path, exc: BaseException) -> CheckpointError:
    """Map whatever torch.load raised onto a reason code; the file name always in the message."""
    if isinstance(exc, CheckpointError):
        return exc
    kind = type(exc).__name__
    text = _first_line(str(exc))
    if isinstance(exc, PermissionError):
        return CheckpointError("unreadable", f"{display}: permission denied")
    if isinstance(exc, MemoryError):
        return CheckpointError("out_of_memory", f"{display}: ran out of memory while loading")
    if isinstance(exc, EOFError):
        return CheckpointError("truncated", f"{display}: the file ends early ({kind})")
    if isinstance(exc, OSError) and exc.errno == errno.EINVAL:
        return CheckpointError("truncated", f"{display}: the zip archive is cut off ({text})")
    if isinstance(exc, OSError):
        return CheckpointError("unreadable", f"{display}: I/O error while loading ({text})")
    if isinstance(exc, RuntimeError) and (
        "central directory" in text or "PytorchStreamReader" in text or "file_size" in text
    ):
        return CheckpointError("truncated", f"{display}: the zip archive is damaged or cut off ({text})")
    return CheckpointError("not_a_checkpoint", f"{display}: torch.load could not read it ({kind}: {text})")
