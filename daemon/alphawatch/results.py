"""The result schema as types: what analysis produces and everything else reads.

One JSON shape is shared by `alphawatch analyze --json`, the ledger, the metrics, the stop
rule and the Python API (docs/CONTRACTS.md). These TypedDicts are that shape, checked by
mypy wherever a result is built or read, so a renamed or missing field is a type error
instead of a `.get(...) or {}` that silently reads None. TypedDicts (not dataclasses) because
results travel as JSON between processes and live in the ledger as JSON: a typed dict is
the parsed JSON itself, with no conversion layer to drift.

Also here, because they are part of the schema's vocabulary: layer statuses and the fixed
layer reasons other modules compare against, and `fingerprint`, which says when two
results describe the same weights.

Standard library only: the daemon's main process imports it.
"""

from __future__ import annotations

import hashlib
import json
from typing import Literal, NotRequired, TypedDict

LayerStatus = Literal["ok", "skipped", "failed"]
HealthState = Literal["overfit", "optimal", "good", "undertrained", "severely_undertrained", "unknown"]

# Fixed layer reasons (the `reason` of a failed layer), compared against by health checks.
NAN_REASON = "NaN/Inf weights"
FIT_FAILED_REASON = "power-law fit failed (WeightWatcher alpha -1)"
FLAT_REASON = (
    "flat spectrum: the tail eigenvalues are equal within 0.1% (e.g. an orthogonal initialisation), "
    "so no power law can be fitted"
)


class LayerResult(TypedDict):
    """One analysed unit (a matrix, or a pooled stack of conv slices / gates)."""

    name: str  # key inside the network's own state dict, plus "[q]"-style part for splits
    key: str  # full dotted path inside the file
    shape: list[int]
    kind: str  # linear | conv1d | conv2d | embedding | rnn_gate | attention
    alpha: float | None
    stable_rank: float | None
    log_spectral_norm: float | None
    D: float | None  # KS distance of the power-law fit
    xmin: float | None
    num_pl_spikes: int | None  # eigenvalues in the fitted tail
    num_evals: int | None
    status: LayerStatus
    reason: str | None


class DeadNeuronLayer(TypedDict):
    name: str
    count: int | None  # None when the activations or weights were not finite
    total: int


class DeadNeurons(TypedDict):
    method: str  # activation | weight
    count: int | None
    total: int | None
    ratio: float | None
    status: str  # DEAD_NEURON_STATES
    fallback_reason: str | None
    layers: list[DeadNeuronLayer]


class NetworkSummary(TypedDict):
    """Means over the layers whose fit succeeded; failed and skipped layers are excluded."""

    alpha: float | None
    alpha_std: float | None
    alpha_min: float | None
    alpha_max: float | None
    stable_rank_mean: float | None
    stable_rank_utilization: float | None
    log_spectral_norm_mean: float | None
    layers_analyzed: int
    layers_skipped: int
    layers_failed: int
    layers_trusted: int  # fitted layers whose alpha is well estimated (analysis.health.is_trusted)
    alpha_min_trusted: float | None  # the lowest alpha among those
    health: HealthState
    dead_neurons: DeadNeurons


class NetworkResult(TypedDict):
    summary: NetworkSummary
    layers: list[LayerResult]


class Issue(TypedDict):
    """A potential problem; `network` is None for one that spans networks."""

    network: str | None
    code: str  # short machine code: overfit, nan_weights, alpha_variance, ...
    message: str  # one human sentence, without the network name


class CheckpointResult(TypedDict):
    path: str
    step: int | None
    format: str
    networks: dict[str, NetworkResult]
    issues: list[Issue]


class Failure(TypedDict):
    """A checkpoint that was refused or failed: `reason` from errors.REASONS."""

    path: str
    reason: str
    message: str


class Trend(TypedDict):
    order: list[str]  # paths, in training order
    steps: list[int | None]
    alpha: dict[str, list[float | None]]  # network -> mean alpha per checkpoint
    pattern: str
    network: NotRequired[str | None]  # the network whose series decided the pattern
    recommended_checkpoint: str | None
    description: str


class Document(TypedDict):
    """`alphawatch analyze --json` / results.json."""

    checkpoints: list[CheckpointResult]
    failures: list[Failure]
    trend: Trend


def network_alpha(result: CheckpointResult, network: str) -> float | None:
    """The network's mean alpha in one checkpoint, or None when it is absent or unfitted."""
    net = result["networks"].get(network)
    return None if net is None else net["summary"]["alpha"]


def network_names(results: list[CheckpointResult]) -> list[str]:
    """Every network seen in `results`, in first-seen order."""
    names: dict[str, None] = {}
    for result in results:
        names.update(dict.fromkeys(result["networks"]))
    return list(names)


def fingerprint(result: CheckpointResult) -> str | None:
    """A digest of what the analysis measured, independent of the file's name and step.

    Two files with the same weights give bit-identical spectra, so the same fingerprint:
    `best_model.pt` saved next to `model_300.pt`, a copied `last.ckpt`, a temp file renamed
    away after it was analyzed. Two different checkpoints agreeing on every layer's alpha,
    stable rank and spectral norm to the last bit does not happen in practice. Why not a
    hash of the file's bytes: the same weights saved twice differ in their zip timestamps
    and pickled bookkeeping (epoch counters, optimizer state), and reading a multi-GB file
    once more only to hash it would double the I/O.

    None when no layer was measured at all (every layer skipped, e.g. a tiny network under
    WeightWatcher's 8-eigenvalue minimum): such results cannot tell two checkpoints apart.
    """
    if not any(layer["alpha"] is not None or layer["stable_rank"] is not None
               for net in result["networks"].values() for layer in net["layers"]):
        return None
    measured = {
        name: [
            [layer["name"], layer["shape"], layer["status"], layer["alpha"], layer["stable_rank"],
             layer["log_spectral_norm"]]
            for layer in net["layers"]
        ]
        for name, net in sorted(result["networks"].items())
    }
    text = json.dumps(measured, sort_keys=True, allow_nan=False, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:32]
