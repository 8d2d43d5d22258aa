"""Dead neurons: hidden units that never vary, found from activations or from weights.

Activation-based (default): feed `samples` seeded inputs through the network and call a
hidden unit dead when the variance of its activation over the samples is below
`dead_neuron_variance_threshold`. This catches every way a unit can die, e.g. a ReLU unit
with normal incoming weights but a large negative bias. The network comes from:

1. a user model factory (`module:function`, called with the network name; its state dict is
   loaded and the outputs of its activation modules are hooked), or
2. a rebuild from the state dict when the network is a chain of Linear layers (SAC actors
   and critics: `nn.Sequential` of Linear + activation), optionally ending in parallel heads
   (SB3's `latent_pi` -> `mu` / `log_std`), or of parallel chains split by the first key
   component (SB3's twin-Q critic `qf0.*` / `qf1.*`), with `options.activation` after each
   hidden layer.

Weight-based (requested, or the fallback when neither applies, with `fallback_reason`):
a unit is dead when the L2 norm of its incoming weights (its row of W) is below
`dead_neuron_weight_threshold`. It misses units killed by their bias. Embedding tables are
not counted: their rows are tokens, and a padding token's row is zero by design.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from alphawatch.analysis.health import dead_neuron_status
from alphawatch.analysis.matrices import is_embedding
from alphawatch.analysis.options import AnalysisOptions
from alphawatch.results import DeadNeuronLayer, DeadNeurons

if TYPE_CHECKING:
    import torch
    from torch import nn

# The activation probe through a user model factory loads the whole network at once.
FACTORY_MAX_BYTES = 1 << 30

_ACTIVATION_MODULES = (
    "ReLU",
    "LeakyReLU",
    "Tanh",
    "GELU",
    "ELU",
    "SiLU",
    "Sigmoid",
    "Softplus",
    "Mish",
    "ReLU6",
    "PReLU",
    "SELU",
    "CELU",
    "Hardtanh",
    "Hardswish",
    "Hardsigmoid",
    "LogSigmoid",
    "Tanhshrink",
)


def _activation(name: str) -> Callable[[torch.Tensor], torch.Tensor]:
    import torch.nn.functional as F

    table: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
        "relu": F.relu,
        "leaky_relu": F.leaky_relu,
        "tanh": F.tanh,
        "gelu": F.gelu,
        "elu": F.elu,
        "silu": F.silu,
        "sigmoid": F.sigmoid,
    }
    if name not in table:
        raise ValueError(f"unknown activation {name!r}; one of {', '.join(table)}")
    return table[name]


def linear_chain(tensors: Mapping[str, torch.Tensor]) -> tuple[list[str], list[str]] | None:
    """(hidden layer prefixes, output head prefixes) when the network is a Linear chain, else None.

    Every weight-like tensor must be a 2-D `*.weight`; consecutive weights must chain
    (in_features == previous out_features); after the chain may come parallel heads that read
    the last hidden layer.
    """
    weights = [(k[: -len(".weight")], t) for k, t in tensors.items() if k.endswith(".weight")]
    if len(weights) < 2 or any(t.dim() != 2 for _, t in weights):
        return None
    if any(t.dim() >= 2 and not k.endswith(".weight") for k, t in tensors.items()):
        return None
    chain = [weights[0]]
    for item in weights[1:]:
        if item[1].shape[1] != chain[-1][1].shape[0]:
            break
        chain.append(item)
    rest = weights[len(chain) :]
    if len(chain) < 2:
        return None
    feed = chain[-2][1].shape[0]
    if any(t.shape[1] != feed for _, t in rest):
        return None
    return [p for p, _ in chain[:-1]], [chain[-1][0]] + [p for p, _ in rest]


Chain = tuple[list[str], list[str]]


def linear_chains(tensors: Mapping[str, torch.Tensor]) -> list[Chain] | None:
    """The network as one Linear chain, or as parallel chains split by first key component.

    SB3's SAC/TD3 critic is one network holding twin Q chains, `qf0.*` and `qf1.*`, each
    reading the same (observation, action) input: not one chain, but two. None when
    neither reading fits.
    """
    whole = linear_chain(tensors)
    if whole is not None:
        return [whole]
    groups: dict[str, dict[str, torch.Tensor]] = {}
    for key, tensor in tensors.items():
        head, dot, _rest = key.partition(".")
        if not dot:
            return None
        groups.setdefault(head, {})[key] = tensor
    if len(groups) < 2:
        return None
    chains = [linear_chain(group) for group in groups.values()]
    if any(chain is None for chain in chains):
        return None
    return [chain for chain in chains if chain is not None]


def _inputs(options: AnalysisOptions, width: int) -> torch.Tensor:
    import torch

    gen = torch.Generator().manual_seed(options.seed)
    if options.input_distribution == "uniform":
        return torch.rand(options.dead_neuron_samples, width, generator=gen) * 2.0 - 1.0
    return torch.randn(options.dead_neuron_samples, width, generator=gen)


def _result(method: str, layers: list[DeadNeuronLayer], fallback_reason: str | None) -> DeadNeurons:
    counts = [c for x in layers if (c := x["count"]) is not None]
    total = sum(x["total"] for x in layers)
    count = sum(counts) if len(counts) == len(layers) else None
    ratio = count / total if count is not None and total else None
    return {
        "method": method,
        "count": count,
        "total": total,
        "ratio": ratio,
        "status": dead_neuron_status(ratio),
        "fallback_reason": fallback_reason,
        "layers": layers,
    }


def _dead_count(values: torch.Tensor, threshold: float) -> int | None:
    """Units (dim 1) whose variance over every other dim is below threshold; None if not finite."""
    import torch

    per_unit = values.transpose(0, 1).reshape(values.shape[1], -1).double()
    var = per_unit.var(dim=1, unbiased=False)
    if not bool(torch.isfinite(var).all()):
        return None
    return int((var < threshold).sum())


def by_rebuild(
    tensors: Mapping[str, torch.Tensor], hidden: list[str], options: AnalysisOptions
) -> list[DeadNeuronLayer]:
    """Run seeded inputs through the rebuilt chain; count constant units per hidden layer."""
    import torch

    act = _activation(options.activation)
    x = _inputs(options, int(tensors[f"{hidden[0]}.weight"].shape[1]))
    layers: list[DeadNeuronLayer] = []
    with torch.no_grad():
        for prefix in hidden:
            w = tensors[f"{prefix}.weight"].to(torch.float32)
            b = tensors.get(f"{prefix}.bias")
            x = act(torch.nn.functional.linear(x, w, None if b is None else b.to(torch.float32)))
            count = _dead_count(x, options.dead_neuron_variance_threshold)
            layers.append({"name": prefix, "count": count, "total": int(w.shape[0])})
    return layers


def _load_factory(spec: str) -> Callable[[str], nn.Module]:
    module_name, _, func = spec.partition(":")
    if not module_name or not func:
        raise ValueError(f"model_factory {spec!r} is not 'module:function'")
    return getattr(importlib.import_module(module_name), func)  # type: ignore[no-any-return]


def by_factory(
    tensors: Mapping[str, torch.Tensor], network: str, options: AnalysisOptions
) -> list[DeadNeuronLayer]:
    """Load the weights into the user's module and hook its activation modules (not the output)."""
    import torch

    assert options.model_factory is not None
    model = _load_factory(options.model_factory)(network)
    missing, unexpected = model.load_state_dict(dict(tensors), strict=False)
    params = {k for k, _ in model.named_parameters()}
    if [k for k in missing if k in params] or unexpected:
        raise ValueError(
            f"state dict does not fit the factory's module "
            f"(missing {missing[:3]}, unexpected {unexpected[:3]})"
        )
    shape = getattr(model, "alphawatch_input_shape", None)
    if shape is None:
        first = next((m for m in model.modules() if isinstance(m, torch.nn.Linear)), None)
        if first is None:
            raise ValueError("no nn.Linear to take the input width from; set model.alphawatch_input_shape")
        shape = (first.in_features,)
    captured: list[tuple[str, torch.Tensor]] = []
    hooks = [
        m.register_forward_hook(lambda _m, _i, out, name=name: captured.append((name, out)))
        for name, m in model.named_modules()
        if type(m).__name__ in _ACTIVATION_MODULES
    ]
    gen = torch.Generator().manual_seed(options.seed)
    n = options.dead_neuron_samples
    x = torch.randn(n, *shape, generator=gen)
    if options.input_distribution == "uniform":
        x = torch.rand(n, *shape, generator=gen) * 2.0 - 1.0
    try:
        with torch.no_grad():
            model.eval()
            output = model(x)
    finally:
        for h in hooks:
            h.remove()
    return [
        {
            "name": name,
            "count": _dead_count(out, options.dead_neuron_variance_threshold),
            "total": int(out.shape[1]),
        }
        for name, out in captured
        if out is not output and out.dim() >= 2
    ]


def by_weights(
    tensors: Mapping[str, torch.Tensor], prefixes: list[str] | None, threshold: float
) -> list[DeadNeuronLayer]:
    """Units whose incoming-weight row norm is below threshold (all *.weight layers if no prefixes)."""
    import torch

    if prefixes is None:  # embedding rows are tokens, not units (a padding row is all zero)
        layout = getattr(tensors, "meta", tensors)
        prefixes = [
            k[: -len(".weight")]
            for k, t in layout.items()
            if k.endswith(".weight") and t.dim() >= 2 and not is_embedding(k)
        ]
    layers: list[DeadNeuronLayer] = []
    for prefix in prefixes:
        w = tensors[f"{prefix}.weight"]
        # Accumulated in float64 without a float64 copy of the weight (bit-identical, 2-3x faster).
        norms = torch.linalg.vector_norm(w.reshape(w.shape[0], -1), dim=1, dtype=torch.float64)
        count = int((norms < threshold).sum()) if bool(torch.isfinite(norms).all()) else None
        layers.append({"name": prefix, "count": count, "total": int(w.shape[0])})
    return layers


def dead_neurons(
    tensors: Mapping[str, torch.Tensor], network: str, options: AnalysisOptions
) -> DeadNeurons:
    """The `dead_neurons` block of a NetworkResult summary.

    Streams: a lazily loaded state dict (checkpoints/lazy.py) offers `meta` (shapes only) for
    the layout decisions, and the rebuilt chain and the weight method read one layer at a
    time. Only a model factory needs the whole network at once; above FACTORY_MAX_BYTES it
    is not used (memory bound, docs/analysis.md#performance) and the chain/weight methods
    answer, with the reason stated.
    """
    layout = getattr(tensors, "meta", tensors)
    chains = linear_chains(layout)
    hidden = [prefix for chain in chains for prefix in chain[0]] if chains else None
    if options.dead_neuron_method == "weight":
        return _result("weight", by_weights(tensors, hidden, options.dead_neuron_weight_threshold), None)
    if options.dead_neuron_samples < 2:  # one sample has variance 0: every unit would be "dead"
        layers = by_weights(tensors, hidden, options.dead_neuron_weight_threshold)
        why = f"the activation method needs at least 2 samples, got {options.dead_neuron_samples}"
        return _result("weight", layers, why + "; counted from incoming weight norms")
    reason: str | None = None
    size = int(getattr(tensors, "nbytes", 0))
    if options.model_factory and size > FACTORY_MAX_BYTES:
        reason = (
            f"model factory {options.model_factory} not used: the network is {size / 2**30:.1f} GiB, "
            f"over the {FACTORY_MAX_BYTES / 2**30:.0f} GiB an activation probe may hold at once"
        )
    elif options.model_factory:
        try:
            return _result("activation", by_factory(tensors, network, options), None)
        except Exception as exc:  # user code: any failure becomes the stated fallback
            reason = f"model factory {options.model_factory} failed: {type(exc).__name__}: {exc}"
    if chains:
        stated = None if reason is None else reason + "; rebuilt as a Linear chain instead"
        layers = [entry for chain in chains for entry in by_rebuild(tensors, chain[0], options)]
        return _result("activation", layers, stated)
    if reason is None:
        reason = "the network is not a chain of Linear layers and no model_factory is configured"
    layers = by_weights(tensors, None, options.dead_neuron_weight_threshold)
    return _result("weight", layers, reason + "; counted from incoming weight norms")
