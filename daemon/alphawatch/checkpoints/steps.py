"""Training step of a checkpoint: from its content when it says, else from its name.

Names vary by producer, so the rules go from explicit to vague:
`step=1200` / `global_step1200` / `1200_steps` (SB3's CheckpointCallback) beat
`checkpoint-500` (Hugging Face), which beats `iter_`/`generation_`/`epoch=` and
finally the last free-standing number (`model_000100.safetensors`). A Lightning
version suffix (`-v1`) is never taken for a step.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

_NUM = r"(\d+)"
_SEP = r"[=_\-]?"
_RULES: tuple[re.Pattern[str], ...] = (
    re.compile(r"(?:^|[^a-z])(?:global_)?steps?" + _SEP + _NUM, re.IGNORECASE),
    re.compile(_NUM + r"[_\-]?steps?(?:$|[^a-z])", re.IGNORECASE),
    re.compile(r"checkpoint-" + _NUM, re.IGNORECASE),
    re.compile(
        r"(?:^|[^a-z])(?:iter|iters|iteration|it|timesteps?|updates?|gen|generation|batch)" + _SEP + _NUM,
        re.IGNORECASE,
    ),
    re.compile(r"(?:^|[^a-z])epochs?" + _SEP + _NUM, re.IGNORECASE),
)
_VERSION_SUFFIX = re.compile(r"-v\d+(?=\.|$)")
_FREE_NUMBER = re.compile(r"(?:^|[_\-=.])(\d+)(?=$|[_\-=.])")

# Keys that hold the step at the top level of a checkpoint, most specific first.
# `epoch` comes last: it is coarser than any step count.
STEP_KEYS = ("step", "global_step", "num_timesteps", "total_steps", "iteration", "epoch")


def parse_step(name: str) -> int | None:
    """The training step in a file or folder name, or None when the name carries none."""
    base = name.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]
    for rule in _RULES:
        found = rule.findall(base)
        if found:
            return int(found[-1])
    stripped = _VERSION_SUFFIX.sub("", base)
    free = _FREE_NUMBER.findall(stripped)
    return int(free[-1]) if free else None


def _as_int(value: Any) -> int | None:
    """A non-negative int from an int or a one-element integer tensor/array, else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    dtype = getattr(value, "dtype", None)
    numel = getattr(value, "numel", None) or getattr(value, "size", None)
    if dtype is None or numel is None:
        return None
    try:
        if (numel() if callable(numel) else numel) != 1:
            return None
        if getattr(dtype, "is_floating_point", False) or "float" in str(dtype):
            return None
        item = int(value.item())
    except (TypeError, ValueError, RuntimeError):
        return None
    return item if item >= 0 else None


def step_from_content(obj: Any) -> int | None:
    """`step`, `global_step`, `num_timesteps`, ... at the top level of a loaded dict."""
    if not isinstance(obj, Mapping):
        return None
    for key in STEP_KEYS:
        if key in obj:
            step = _as_int(obj[key])
            if step is not None:
                return step
    return None
