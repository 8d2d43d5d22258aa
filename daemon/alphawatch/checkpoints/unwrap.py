"""Find the weights inside whatever object a checkpoint holds.

Training scripts wrap weights in many ways: `{"model_state_dict": sd, "optimizer_state_dict":
..., "epoch": 3}`, Lightning's `{"state_dict": sd, "optimizer_states": [...], ...}`,
`{"model": {"actor": sd, ...}}`, tuples of state dicts, SAC's `{"actor": sd, "critic_1":
sd, ...}`. This module peels single wrappers, drops optimizer/scheduler/bookkeeping state
(with a note), and lists every floating-point tensor with its path. Grouping into networks
is `grouping.py`'s job.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# A wrapper is peeled when it is the only entry that holds tensors.
WRAPPER_KEYS = ("state_dict", "model_state_dict", "model_state", "net_state_dict", "model", "module")

# Entries that are never network weights (optimizer moments look like weights, but are not).
_IGNORED_EXACT = {
    "optimizer", "optimizers", "optimizer_states", "optim", "opt",
    "scheduler", "schedulers", "lr_scheduler", "lr_schedulers", "scaler", "grad_scaler", "amp",
    "loops", "callbacks", "hyper_parameters", "hparams", "hparams_name", "args", "config",
    "rng_state", "rng_states", "random_state", "replay_buffer",
}  # fmt: skip
_IGNORED_PATTERN = re.compile(
    r"(^|_)(optim|optimizer|opt|scheduler|lr_scheduler|scaler)(_|$|s$)", re.IGNORECASE
)

LIGHTNING_MARKERS = ("pytorch-lightning_version", "lightning_version")


@dataclass
class Found:
    """Floating tensors under the unwrapped base object, with their paths relative to it."""

    base: Any
    prefix: tuple[str, ...]
    tensors: list[tuple[tuple[str, ...], Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    integer_tensors: list[str] = field(default_factory=list)
    # tensors without data (device 'meta': a model built with torch.device("meta") or
    # accelerate's init_empty_weights and saved before its weights were materialized)
    meta_tensors: list[str] = field(default_factory=list)
    visited: int = 0  # objects the walk looked at (bounded by MAX_NODES)


def is_ignored_key(key: str) -> bool:
    """Optimizer, scheduler and bookkeeping entries (by name)."""
    return key in _IGNORED_EXACT or bool(_IGNORED_PATTERN.search(key))


def is_optimizer_state(value: Any) -> bool:
    """torch.optim state dicts have exactly these two keys, wherever they are stored."""
    return isinstance(value, Mapping) and set(value.keys()) == {"state", "param_groups"}


def is_lightning(obj: Any) -> bool:
    """A Lightning .ckpt: its version key, or state_dict + global_step + Lightning's loop state."""
    if not isinstance(obj, Mapping):
        return False
    if any(k in obj for k in LIGHTNING_MARKERS):
        return True
    return "state_dict" in obj and "global_step" in obj and ("loops" in obj or "optimizer_states" in obj)


def _is_tensor(value: Any) -> bool:
    import torch

    from alphawatch.checkpoints.lazy import LazyTensor

    return isinstance(value, torch.Tensor | LazyTensor)


# Why bounds: `weights_only` unpickling allows shared references, so a 27 KB file can hold
# `L_k = [L_{k-1}, L_{k-1}]` thirty levels deep: a DAG with 2**30 paths. Every walk below
# visits each container once (memo by `id`), stops at MAX_DEPTH, and gives up after
# MAX_NODES objects, so no file can keep the worker busy for more than a moment.
MAX_DEPTH = 50
MAX_NODES = 5_000_000
# Leaves that can never hold weights: skipped with one type lookup each.
_SCALARS = frozenset({int, float, str, bytes, bool, type(None), complex})


class TooComplex(ValueError):
    """The object graph outside the tensors has more than MAX_NODES objects."""


class _Walk:
    """One budget and one memo for every walk over one loaded object."""

    def __init__(self, max_nodes: int) -> None:
        self.max_nodes = max_nodes
        self.visited = 0
        self._holds: dict[int, bool] = {}

    def count(self, n: int = 1) -> None:
        self.visited += n
        if self.visited > self.max_nodes:
            raise TooComplex(f"more than {self.max_nodes:,} objects outside the tensors")

    def holds_tensors(self, value: Any, depth: int = 0) -> bool:
        if depth > MAX_DEPTH or type(value) in _SCALARS:
            return False
        if _is_tensor(value) or _is_float_array(value):
            return True
        if not isinstance(value, Mapping | list | tuple) or is_optimizer_state(value):
            return False
        known = self._holds.get(id(value))
        if known is not None:
            return known
        self._holds[id(value)] = False  # a cycle back here adds nothing
        children = value.values() if isinstance(value, Mapping) else value
        self.count(len(children))
        answer = any(self.holds_tensors(v, depth + 1) for v in children)
        self._holds[id(value)] = answer
        return answer

    def holds_weights(self, value: Any) -> bool:
        """A state-dict-like container, or a matrix; a scalar or a metrics curve is not weights."""
        if _is_tensor(value) or _is_float_array(value):
            return len(value.shape) >= 2
        return isinstance(value, Mapping | list | tuple) and self.holds_tensors(value)


def _is_float_array(value: Any) -> bool:
    kind = getattr(getattr(value, "dtype", None), "kind", None)
    return kind == "f" and hasattr(value, "__array_interface__")


def _entries(obj: Any) -> list[tuple[str, Any]]:
    if isinstance(obj, Mapping):
        return [(str(k), v) for k, v in obj.items()]
    if isinstance(obj, list | tuple):
        return [(str(i), v) for i, v in enumerate(obj)]
    return []


def _drop_ignored(obj: Any, notes: list[str], where: str) -> Any:
    """The mapping without optimizer/scheduler/bookkeeping entries; notes what went."""
    if not isinstance(obj, Mapping):
        return obj
    kept: dict[str, Any] = {}
    dropped: list[str] = []
    for key, value in obj.items():
        name = str(key)
        if (is_ignored_key(name) or is_optimizer_state(value)) and _holds_any(value):
            dropped.append(name)
        elif not is_ignored_key(name):
            kept[name] = value
    if dropped:
        notes.append(f"ignored non-weight state{where}: {', '.join(sorted(dropped))}")
    return kept


def _holds_any(value: Any) -> bool:
    return value is not None and not isinstance(value, str | int | float | bool)


def unwrap(obj: Any, max_nodes: int | None = None) -> Found:
    """Peel wrappers and list every floating tensor below the base (see module doc).

    Each container is walked once, however often it is referenced (a container reached
    again is an alias of one already listed); raises TooComplex past `max_nodes` objects.
    """
    walk = _Walk(MAX_NODES if max_nodes is None else max_nodes)
    notes: list[str] = []
    prefix: list[str] = []
    base = _drop_ignored(obj, notes, "")
    while isinstance(base, Mapping):
        holders = [k for k, v in base.items() if walk.holds_weights(v)]
        if len(holders) != 1 or holders[0] not in WRAPPER_KEYS or not isinstance(base[holders[0]], Mapping):
            break
        strays = sorted(k for k, v in base.items() if k != holders[0] and walk.holds_tensors(v))
        if strays:
            notes.append(f"ignored tensors outside any network: {', '.join(strays[:5])}")
        prefix.append(holders[0])
        base = _drop_ignored(base[holders[0]], notes, f" in {'.'.join(prefix)}")
    found = Found(base=base, prefix=tuple(prefix), notes=notes)
    _collect(base, (), found, 0, walk, set())
    found.visited = walk.visited
    if found.integer_tensors:
        sample = ", ".join(found.integer_tensors[:3])
        found.notes.append(f"ignored {len(found.integer_tensors)} non-floating tensors (e.g. {sample})")
    if found.meta_tensors:
        sample = ", ".join(found.meta_tensors[:3])
        found.notes.append(f"ignored {len(found.meta_tensors)} tensors on the 'meta' device, which hold "
                           f"no data (e.g. {sample})")
    return found


def _collect(value: Any, parts: tuple[str, ...], found: Found, depth: int, walk: _Walk,
             seen: set[int]) -> None:
    if depth > MAX_DEPTH or type(value) in _SCALARS or is_optimizer_state(value):
        return
    if _is_tensor(value):
        if value.is_meta:
            found.meta_tensors.append(".".join(found.prefix + parts))
        elif value.is_floating_point():
            found.tensors.append((parts, value))
        else:
            found.integer_tensors.append(".".join(found.prefix + parts))
        return
    if _is_float_array(value):
        import numpy as np
        import torch

        found.tensors.append((parts, torch.from_numpy(np.ascontiguousarray(value))))
        return
    if not isinstance(value, Mapping | list | tuple) or id(value) in seen:
        return
    seen.add(id(value))
    if not walk.holds_tensors(value, depth):  # memoized: a tensor-free subtree costs nothing more
        return
    entries = _entries(value)
    walk.count(len(entries))
    for key, child in entries:
        _collect(child, parts + (key,), found, depth + 1, walk, seen)
