"""Tensors in, result schema out (docs/CONTRACTS.md): the one entry point CLI, daemon and API share."""

from __future__ import annotations

import contextlib
import math
import statistics
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from alphawatch.analysis.dead_neurons import dead_neurons
from alphawatch.analysis.eigen import resolve_device
from alphawatch.analysis.health import alpha_verdict, checkpoint_issues, is_trusted
from alphawatch.analysis.layers import analyze_units
from alphawatch.analysis.matrices import Unit, network_units
from alphawatch.analysis.options import AnalysisOptions
from alphawatch.results import CheckpointResult, DeadNeurons, LayerResult, NetworkResult, NetworkSummary

if TYPE_CHECKING:
    import torch


class CheckpointLike(Protocol):
    """What `analyze_checkpoint` reads from `alphawatch.checkpoints.Checkpoint`."""

    @property
    def path(self) -> str: ...
    @property
    def format(self) -> str: ...
    @property
    def step(self) -> int | None: ...
    @property
    def networks(self) -> Mapping[str, Mapping[str, torch.Tensor]]: ...
    @property
    def keys(self) -> Mapping[str, Mapping[str, str]]: ...


@contextlib.contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """Use `threads` intra-op threads inside the block, then restore the previous setting."""
    import torch

    before = torch.get_num_threads()
    if threads and threads > 0:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _mean(values: list[float]) -> float | None:
    return statistics.fmean(values) if values else None


def summarize(layers: list[LayerResult], dead: DeadNeurons) -> NetworkSummary:
    """Summary over layers whose fit succeeded; failed and skipped layers are excluded."""
    ok = [x for x in layers if x["status"] == "ok"]
    alphas = [a for x in ok if (a := x["alpha"]) is not None]
    ranks = [r for x in ok if (r := x["stable_rank"]) is not None]
    utils = [r / n for x in ok if (r := x["stable_rank"]) is not None and (n := x["num_evals"])]
    norms = [v for x in ok if (v := x["log_spectral_norm"]) is not None]
    alpha = _mean(alphas)
    trusted = [a for x in ok if is_trusted(x) and (a := x["alpha"]) is not None]
    return {
        "alpha": alpha,
        "alpha_std": statistics.pstdev(alphas) if alphas else None,
        "alpha_min": min(alphas) if alphas else None,
        "alpha_max": max(alphas) if alphas else None,
        "stable_rank_mean": _mean(ranks),
        "stable_rank_utilization": _mean(utils),
        "log_spectral_norm_mean": _mean(norms),
        "layers_analyzed": len(ok),
        "layers_skipped": sum(1 for x in layers if x["status"] == "skipped"),
        "layers_failed": sum(1 for x in layers if x["status"] == "failed"),
        "layers_trusted": len(trusted),
        "alpha_min_trusted": min(trusted) if trusted else None,
        "health": alpha_verdict(alpha),
        "dead_neurons": dead,
    }


def _layer(unit: Unit, spectral: dict[str, Any]) -> LayerResult:
    return {
        "name": unit.name,
        "key": unit.key,
        "shape": list(unit.shape),
        "kind": unit.kind,
        "alpha": spectral["alpha"],
        "stable_rank": spectral["stable_rank"],
        "log_spectral_norm": spectral["log_spectral_norm"],
        "D": spectral["D"],
        "xmin": spectral["xmin"],
        "num_pl_spikes": spectral["num_pl_spikes"],
        "num_evals": spectral["num_evals"],
        "status": spectral["status"],
        "reason": spectral["reason"],
    }


def analyze_network(
    tensors: Mapping[str, torch.Tensor],
    keys: Mapping[str, str],
    options: AnalysisOptions,
    *,
    name: str = "model",
) -> NetworkResult:
    """NetworkResult for one network's state dict; `name` is passed to a model factory."""
    return analyze_networks({name: tensors}, {name: keys}, options)[name]


def analyze_networks(
    networks: Mapping[str, Mapping[str, torch.Tensor]],
    keys: Mapping[str, Mapping[str, str]],
    options: AnalysisOptions,
) -> dict[str, NetworkResult]:
    """NetworkResult per network, every layer of every network through one pool of threads.

    Why one pool, not one per network: a pool drains at its end, so a network made of one
    big matrix (a transformer's word embedding, 30522x384) ran alone on one core while the
    next network waited. MiniLM-L6: 0.52 s per network, measured before this change.
    """
    owners: deque[str] = deque()  # network of each unit, in the order units are yielded

    def every_unit() -> Iterator[Unit]:
        for name, tensors in networks.items():
            for unit in network_units(tensors, keys.get(name, {})):
                owners.append(name)
                yield unit

    dead: dict[str, DeadNeurons] = {}

    def count_dead() -> None:
        for name, tensors in networks.items():
            dead[name] = dead_neurons(tensors, name, options)

    layers: dict[str, list[LayerResult]] = {name: [] for name in networks}
    with torch_threads(options.threads):
        device = resolve_device(options.device)
        units = analyze_units(every_unit(), options.threads, device, then=count_dead,
                              intra_op_when_alone=options.intra_op_when_alone)
        for unit, spectral in units:
            layers[owners.popleft()].append(_layer(unit, spectral))
        return {name: {"summary": summarize(layers[name], dead[name]), "layers": layers[name]}
                for name in networks}  # fmt: skip


def selected_networks(available: Sequence[str], options: AnalysisOptions) -> tuple[list[str], list[str]]:
    """(networks to analyze, requested networks the checkpoint does not have)."""
    wanted = list(options.networks) or list(available)
    return [n for n in wanted if n in available], [n for n in wanted if n not in available]


def analyze_checkpoint(ckpt: CheckpointLike, options: AnalysisOptions) -> CheckpointResult:
    """CheckpointResult: every (selected) network, plus the potential issues across them."""
    present, missing = selected_networks(list(ckpt.networks), options)
    networks = analyze_networks({name: ckpt.networks[name] for name in present}, ckpt.keys, options)
    issues = checkpoint_issues(networks)
    if missing:
        issues.append({"network": None, "code": "missing_networks", "message": (
            f"network(s) not in checkpoint: {', '.join(missing)} (found: {', '.join(ckpt.networks)})")})
    return {
        "path": str(ckpt.path),
        "step": ckpt.step,
        "format": ckpt.format,
        "networks": networks,
        "issues": issues,
    }


def assert_finite(result: Any) -> None:
    """Raise ValueError if a NaN or Inf hides anywhere in a result (tests and the worker use it)."""
    if isinstance(result, float) and not math.isfinite(result):
        raise ValueError("non-finite number in result")
    if isinstance(result, Mapping):
        for v in result.values():
            assert_finite(v)
    elif isinstance(result, (list, tuple)):
        for v in result:
            assert_finite(v)
