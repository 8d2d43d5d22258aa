"""layers.analyze_units: order kept across threads, identical tensors analyzed once, same numbers."""

from __future__ import annotations

import torch
from alphawatch.analysis.layers import SpectralCache, analyze_units, content_key
from alphawatch.analysis.matrices import network_units


def _net(seed: int) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return {f"{i}.weight": torch.randn(64 + 16 * i, 96, generator=gen) for i in range(6)}


def test_threads_keep_order_and_numbers() -> None:
    sd = _net(0)
    cpu = torch.device("cpu")
    one = [(u.name, r) for u, r in analyze_units(network_units(sd, {}), 1, cpu, cache=None)]
    two = [(u.name, r) for u, r in analyze_units(network_units(sd, {}), 2, cpu, cache=None)]
    assert [n for n, _ in one] == list(sd)
    assert one == two


def test_identical_tensors_are_analyzed_once() -> None:
    """SAC targets equal to critics, tied weights, frozen layers across checkpoints."""
    cache = SpectralCache()
    sd = _net(1)
    sd["copy.weight"] = sd["2.weight"].clone()
    cpu = torch.device("cpu")
    results = dict((u.name, r) for u, r in analyze_units(network_units(sd, {}), 2, cpu, cache=cache))
    assert cache.hits == 1 and results["copy.weight"] == results["2.weight"]
    list(analyze_units(network_units(_net(1), {}), 1, cpu, cache=cache))  # the next "checkpoint"
    assert cache.hits == 1 + 6


def test_content_key_sees_one_changed_element_and_dtype() -> None:
    sd = _net(2)
    (unit,) = network_units({"w": sd["0.weight"]}, {})
    changed = sd["0.weight"].clone()
    changed[5, 7] += 1e-6
    (other,) = network_units({"w": changed}, {})
    (half,) = network_units({"w": sd["0.weight"].to(torch.bfloat16)}, {})
    assert len({content_key(unit), content_key(other), content_key(half)}) == 3


def test_cache_is_bounded() -> None:
    cache = SpectralCache(entries=2)
    for i in range(3):
        cache.put((i,), {"alpha": float(i)})
    assert cache.get((0,)) is None and cache.get((2,)) == {"alpha": 2.0}
