"""What an analysis should compute: one frozen value shared by CLI, daemon and API.

It also crosses a process boundary (the daemon sends it to its worker subprocess), so its
JSON form lives here, next to the fields: `to_json()` / `from_json()` round-trip exactly.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

DEAD_NEURON_METHODS = ("activation", "weight")
ACTIVATIONS = ("relu", "leaky_relu", "tanh", "gelu", "elu", "silu", "sigmoid")
INPUT_DISTRIBUTIONS = ("normal", "uniform")


@dataclass(frozen=True)
class AnalysisOptions:
    """Options for `analyze_checkpoint`; defaults are the documented defaults."""

    # restrict to these networks (empty: all networks found)
    networks: tuple[str, ...] = ()
    # network name -> glob patterns over full dotted keys; overrides first-component grouping
    network_patterns: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    dead_neuron_method: str = "activation"
    dead_neuron_samples: int = 1000
    # a unit is dead when its activation variance over the samples is below this
    dead_neuron_variance_threshold: float = 1e-6
    # weight method: a unit is dead when its incoming-weight L2 norm is below this
    dead_neuron_weight_threshold: float = 1e-3
    activation: str = "relu"
    input_distribution: str = "normal"
    # "module:function" returning an nn.Module given the network name (see README)
    model_factory: str | None = None
    # the overfitting threshold the trend/recommendation logic uses
    alpha_threshold: float = 2.0
    seed: int = 0
    # CPU cores for the analysis: layers are spread over this many threads
    threads: int = 1
    # a layer that runs alone (the last one, the other threads idle) uses all `threads` as
    # intra-op threads; the daemon turns this off: next to a trainer that holds the cores,
    # intra-op threads wait on each other (docs/analysis.md, "Layers over threads")
    intra_op_when_alone: bool = True
    # where eigenvalues are computed: "auto" (CUDA when torch sees a GPU, else CPU), "cpu",
    # "cuda" or "cuda:N"; a GPU is never required
    device: str = "auto"

    def to_json(self) -> dict[str, Any]:
        """Plain JSON values: tuples become lists, the patterns mapping a dict of lists."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "network_patterns":
                value = {name: list(globs) for name, globs in dict(value).items()}
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> AnalysisOptions:
        """The inverse of `to_json`; unknown keys are an error (both ends run the same version)."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"unknown analysis option(s): {', '.join(unknown)}")
        kwargs: dict[str, Any] = {}
        for name, value in data.items():
            if name == "network_patterns":
                value = {k: tuple(v) for k, v in (value or {}).items()}
            elif isinstance(value, list):
                value = tuple(value)
            kwargs[name] = value
        return cls(**kwargs)
