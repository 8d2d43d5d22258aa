"""Which tensors belong to which network.

Three rules, in this order (docs/checkpoints.md, "Networks"):

1. `network_patterns` from the config (name -> globs over full dotted keys) decide alone.
2. A dict of state dicts (`{"actor": sd, "critic_1": sd}`, or a tuple of them) gives one
   network per entry.
3. A flat state dict is split by its first key component (`actor.*`, `critic.*`,
   `critic_target.*`) when there are several components, none of them numeric (an
   nn.Sequential's `0.weight` is one network), and every key is at least
   `group.module.param` (so `conv1.weight` + `fc.weight` stay one model). Otherwise it
   is one network named `model`.

Layer names are keys inside the network's own state dict; DataParallel's `module.` and
torch.compile's `_orig_mod.` prefixes are dropped from them (the full key keeps them).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping, Sequence
from typing import Any

from alphawatch.checkpoints.unwrap import Found

SINGLE_NETWORK = "model"
_WRAPPER_PREFIXES = ("module.", "_orig_mod.")

Networks = dict[str, dict[str, Any]]
Keys = dict[str, dict[str, str]]


def _dotted(parts: Sequence[str]) -> str:
    return ".".join(p for p in parts if p != "")


def _strip_wrappers(layers: dict[str, tuple[str, Any]]) -> dict[str, tuple[str, Any]]:
    """Drop a `module.` / `_orig_mod.` prefix shared by every layer name of one network."""
    changed = True
    while changed and layers:
        changed = False
        for prefix in _WRAPPER_PREFIXES:
            if all(name.startswith(prefix) and len(name) > len(prefix) for name in layers):
                layers = {name[len(prefix) :]: v for name, v in layers.items()}
                changed = True
    return layers


def _finish(groups: dict[str, dict[str, tuple[str, Any]]]) -> tuple[Networks, Keys]:
    networks: Networks = {}
    keys: Keys = {}
    for net, layers in groups.items():
        layers = _strip_wrappers(layers)
        networks[net] = {name: tensor for name, (_full, tensor) in layers.items()}
        keys[net] = {name: full for name, (full, _tensor) in layers.items()}
    return networks, keys


def _first_component_groups(flat: Sequence[tuple[str, str, Any]]) -> dict[str, dict[str, tuple[str, Any]]]:
    """Rule 3 over (relative key, full key, tensor) triples."""
    components = {rel.split(".", 1)[0] for rel, _full, _t in flat}
    splittable = (
        len(components) > 1
        and not any(c.isdigit() for c in components)
        and all(rel.count(".") >= 2 for rel, _full, _t in flat)
    )
    groups: dict[str, dict[str, tuple[str, Any]]] = {}
    for rel, full, tensor in flat:
        if splittable:
            net, layer = rel.split(".", 1)
        else:
            net, layer = SINGLE_NETWORK, rel
        groups.setdefault(net, {})[layer] = (full, tensor)
    return groups


def group_default(found: Found, notes: list[str]) -> tuple[Networks, Keys]:
    """Rules 2 and 3 (see module doc)."""
    prefix = found.prefix
    nested = [t for t in found.tensors if len(t[0]) >= 2]
    flat = [t for t in found.tensors if len(t[0]) == 1]
    if not nested:  # a flat state dict (or a bare tensor)
        triples = [
            (_dotted(parts) or "tensor", _dotted(prefix + parts) or "tensor", tensor)
            for parts, tensor in found.tensors
        ]
        return _finish(_first_component_groups(triples))
    groups: dict[str, dict[str, tuple[str, Any]]] = {}
    for parts, tensor in nested:
        groups.setdefault(parts[0], {})[_dotted(parts[1:])] = (_dotted(prefix + parts), tensor)
    stray_small: list[str] = []
    for parts, tensor in flat:
        if tensor.dim() >= 2:
            groups.setdefault(parts[0], {})[parts[0]] = (_dotted(prefix + parts), tensor)
        else:
            stray_small.append(_dotted(prefix + parts))
    if stray_small:
        notes.append(f"ignored tensors outside any network: {', '.join(sorted(stray_small)[:5])}")
    return _finish(groups)


def group_by_patterns(
    found: Found, patterns: Mapping[str, Sequence[str]], notes: list[str]
) -> tuple[Networks, Keys]:
    """Rule 1: each tensor goes to the first network with a glob matching its full key.

    A glob may match the full key (`state_dict.actor.*`) or the key below the peeled
    wrappers (`actor.*`). Layer names are the keys with the network's common leading
    components removed (keeping at least `module.param`).
    """
    members: dict[str, list[tuple[str, str, Any]]] = {name: [] for name in patterns}
    unmatched = 0
    for parts, tensor in found.tensors:
        rel = _dotted(parts)
        full = _dotted(found.prefix + parts)
        for name, globs in patterns.items():
            if any(fnmatch.fnmatchcase(full, g) or fnmatch.fnmatchcase(rel, g) for g in globs):
                members[name].append((rel, full, tensor))
                break
        else:
            unmatched += 1
    if unmatched:
        notes.append(f"{unmatched} tensors matched no network pattern and were left out")
    groups: dict[str, dict[str, tuple[str, Any]]] = {}
    for name, rows in members.items():
        if not rows:
            notes.append(f"network pattern {name!r} matched no tensor")
            continue
        split = [rel.split(".") for rel, _f, _t in rows]
        common = 0
        shortest = min(len(s) for s in split)
        while common < shortest - 2 and all(s[common] == split[0][common] for s in split):
            common += 1
        groups[name] = {
            ".".join(s[common:]): (full, t) for s, (_rel, full, t) in zip(split, rows, strict=True)
        }
    return _finish(groups)


def group(
    found: Found, patterns: Mapping[str, Sequence[str]] | None, notes: list[str]
) -> tuple[Networks, Keys]:
    """Networks and full keys for the tensors `unwrap` found."""
    if patterns:
        return group_by_patterns(found, patterns, notes)
    return group_default(found, notes)
