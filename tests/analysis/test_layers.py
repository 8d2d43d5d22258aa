"""layers.analyze_units: order kept across threads, identical tensors analyzed once, same numbers."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from typing import Any

import pytest
import torch
from alphawatch.analysis.layers import SpectralCache, analyze_units, content_key
from alphawatch.analysis.matrices import Unit, network_units


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


def test_a_free_thread_takes_later_units_while_an_earlier_one_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Unit 0 cannot finish until unit 3 has started: waiting for results in order would
    leave the second thread idle behind unit 0 (and here, never start unit 3 at all).
    Meanwhile no more than `threads` units may hold a tensor."""
    from alphawatch.analysis import layers

    real = layers.analyze_unit
    third_started = threading.Event()
    holding: set[str] = set()  # units handed out whose analysis has not finished
    most_held = 0

    def analyze(unit: Unit, device: torch.device) -> dict[str, Any]:
        if unit.name == "3.weight":
            third_started.set()
        if unit.name == "0.weight" and not third_started.wait(30):
            raise AssertionError("unit 3 never started while unit 0 was running")
        try:
            return real(unit, device)
        finally:
            holding.discard(unit.name)

    def lazily(units: Iterable[Unit]) -> Iterator[Unit]:
        nonlocal most_held
        for unit in units:
            holding.add(unit.name)
            most_held = max(most_held, len(holding))
            yield unit

    monkeypatch.setattr(layers, "analyze_unit", analyze)
    sd = _net(4)
    out = list(analyze_units(lazily(network_units(sd, {})), 2, torch.device("cpu"), cache=None))
    assert [u.name for u, _ in out] == list(sd)  # still in the order given
    assert all(u.stack is None for u, _ in out)  # a unit comes back without its tensor
    assert most_held <= 2


def test_every_unit_comes_out_when_results_are_ready_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Cache hits finish before the pool is even looked at again. Here every future is done
    the moment it is submitted (an inline executor): with both threads' results ready and
    nothing left in order, the loop once returned without taking the rest of the units."""
    from concurrent.futures import Future

    from alphawatch.analysis import layers

    class Inline:
        def __init__(self, *_args: Any, **_kwargs: Any) -> None: ...
        def __enter__(self) -> Inline:
            return self

        def __exit__(self, *_exc: object) -> None: ...
        def submit(self, fn: Any, *args: Any) -> Future[Any]:
            future: Future[Any] = Future()
            future.set_result(fn(*args))
            return future

    monkeypatch.setattr(layers, "ThreadPoolExecutor", Inline)
    sd = _net(5)
    out = [u.name for u, _ in analyze_units(network_units(sd, {}), 2, torch.device("cpu"), cache=None)]
    assert out == list(sd)


def _threads_seen(
    monkeypatch: pytest.MonkeyPatch, started: threading.Barrier | None = None
) -> list[tuple[int, int]]:
    """Records (torch threads, SciPy OpenBLAS threads) as each unit's analysis sees them."""
    from alphawatch.analysis import layers
    from threadpoolctl import threadpool_info

    real = layers.analyze_unit
    seen: list[tuple[int, int]] = []

    def analyze(unit: Unit, device: torch.device) -> dict[str, Any]:
        if started is not None:
            started.wait(30)  # both units are running at once: neither runs alone
        blas = {lib["num_threads"] for lib in threadpool_info() if "scipy_openblas-" in lib["filepath"]}
        seen.append((torch.get_num_threads(), blas.pop()))
        return real(unit, device)

    monkeypatch.setattr(layers, "analyze_unit", analyze)
    return seen


def test_a_unit_that_runs_alone_gets_every_thread_then_they_are_restored(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The last unit, with the other threads idle (a checkpoint that is one big matrix),
    runs its BLAS/LAPACK on all `threads` instead of leaving a core idle."""
    from threadpoolctl import threadpool_info

    seen = _threads_seen(monkeypatch)
    sd = _net(6)
    before = (torch.get_num_threads(), [lib["num_threads"] for lib in threadpool_info()])
    one = list(analyze_units(network_units({"w": sd["0.weight"]}, {}), 2, torch.device("cpu"), cache=None))
    assert seen == [(2, 2)]
    assert (torch.get_num_threads(), [lib["num_threads"] for lib in threadpool_info()]) == before
    alone_off = analyze_units(network_units({"w": sd["0.weight"]}, {}), 2, torch.device("cpu"), cache=None,
                              intra_op_when_alone=False)
    assert list(alone_off) == one  # same numbers either way
    assert seen == [(2, 2), (1, 1)]


def test_units_that_run_together_are_single_threaded(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = _threads_seen(monkeypatch, threading.Barrier(2))
    sd = _net(7)
    two = {"0.weight": sd["0.weight"], "1.weight": sd["1.weight"]}
    list(analyze_units(network_units(two, {}), 2, torch.device("cpu"), cache=None))
    assert seen == [(1, 1), (1, 1)]


def test_more_threads_for_a_lone_mkl_sized_unit_keep_the_numbers() -> None:
    """Above eigen.OPENBLAS_EIGEN_MAX the eigensolver is torch's (MKL); two threads for it and
    for syrk change the order of sums only."""
    gen = torch.Generator().manual_seed(8)
    sd = {"w": torch.randn(1100, 1100, generator=gen) / 33}
    cpu = torch.device("cpu")
    (_, alone), = analyze_units(network_units(sd, {}), 2, cpu, cache=None)
    (_, single), = analyze_units(network_units(sd, {}), 1, cpu, cache=None)
    assert alone["xmin"] == pytest.approx(single["xmin"], rel=1e-9)
    assert alone["alpha"] == pytest.approx(single["alpha"], rel=1e-9)
    assert alone["num_pl_spikes"] == single["num_pl_spikes"]


def test_then_runs_on_a_free_thread_while_the_last_unit_finishes(monkeypatch: pytest.MonkeyPatch) -> None:
    """The dead-neuron counts read the checkpoint again: they run on the first thread that finds
    no unit left, not after every unit on one core. Unit 1 cannot finish until `then` began."""
    from alphawatch.analysis import layers

    real = layers.analyze_unit
    then_began = threading.Event()

    def analyze(unit: Unit, device: torch.device) -> dict[str, Any]:
        if unit.name == "1.weight" and not then_began.wait(30):
            raise AssertionError("`then` did not start while the last unit was running")
        return real(unit, device)

    monkeypatch.setattr(layers, "analyze_unit", analyze)
    sd = _net(9)
    two = {"0.weight": sd["0.weight"], "1.weight": sd["1.weight"]}
    calls: list[str] = []

    def then() -> None:
        calls.append(threading.current_thread().name)
        then_began.set()

    units = analyze_units(network_units(two, {}), 2, torch.device("cpu"), cache=None, then=then)
    out = [u.name for u, _ in units]
    assert out == list(two) and len(calls) == 1 and calls[0].startswith("alphawatch-layer")


def test_then_waits_for_a_unit_running_alone_and_runs_without_units(monkeypatch: pytest.MonkeyPatch) -> None:
    from alphawatch.analysis import layers

    real = layers.analyze_unit
    order: list[str] = []

    def analyze(unit: Unit, device: torch.device) -> dict[str, Any]:
        result = real(unit, device)
        order.append(unit.name)
        return result

    monkeypatch.setattr(layers, "analyze_unit", analyze)
    units = network_units({"w": _net(10)["0.weight"]}, {})
    list(analyze_units(units, 2, torch.device("cpu"), then=lambda: order.append("then")))
    assert order == ["w", "then"]  # the lone unit had both threads; `then` did not compete with it
    assert list(analyze_units([], 2, torch.device("cpu"), then=lambda: order.append("empty"))) == []
    assert order[-1] == "empty"


def test_an_error_in_then_reaches_the_caller() -> None:
    def then() -> None:
        raise RuntimeError("counting failed")

    with pytest.raises(RuntimeError, match="counting failed"):
        list(analyze_units(network_units(_net(11), {}), 2, torch.device("cpu"), cache=None, then=then))
