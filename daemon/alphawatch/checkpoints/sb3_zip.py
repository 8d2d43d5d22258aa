"""Stable-Baselines3 `.zip` files: the weights are the state dict in `policy.pth`.

`data` (JSON) gives `num_timesteps`; its ":serialized:" entries are base64 pickles of
Python classes and are never decoded. Optimizer files (`*.optimizer.pth`) and
`pytorch_variables.pth` (entropy coefficient) are not weights and are not read.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

from alphawatch.checkpoints.torch_file import load_torch_bytes
from alphawatch.errors import CheckpointError

_MAX_POLICY_BYTES = 16 * 2**30
# what zipfile raises on damaged members (bad CRC, odd compression, cut streams)
_ZIP_ERRORS = (zipfile.BadZipFile, KeyError, EOFError, OSError, ValueError, NotImplementedError, RuntimeError)


def load_sb3_zip(path: Path, display: str | Path) -> tuple[Any, list[str], int | None]:
    """(policy state dict, notes, num_timesteps from `data`)."""
    try:
        with zipfile.ZipFile(path) as zf:
            info = zf.getinfo("policy.pth")
            if info.file_size > _MAX_POLICY_BYTES:
                raise CheckpointError("unsupported", f"{display}: policy.pth is larger than 16 GiB")
            policy = zf.read(info)
            others = sorted(n for n in zf.namelist() if n.endswith(".pth") and n != "policy.pth")
            step = _num_timesteps(zf)
    except CheckpointError:
        raise
    except PermissionError as exc:
        raise CheckpointError("unreadable", f"{display}: permission denied") from exc
    except _ZIP_ERRORS as exc:
        raise CheckpointError("not_a_checkpoint", f"{display}: damaged SB3 zip ({exc})") from exc
    obj = load_torch_bytes(policy, f"{display}:policy.pth")
    notes = [f"not loaded (not policy weights): {', '.join(others)}"] if others else []
    return obj, notes, step


def _num_timesteps(zf: zipfile.ZipFile) -> int | None:
    try:
        data = json.loads(zf.read("data"))
    except (KeyError, ValueError):
        return None
    step = data.get("num_timesteps") if isinstance(data, dict) else None
    return step if isinstance(step, int) and not isinstance(step, bool) and step >= 0 else None
