"""Candidate stop rules: small pure functions over CheckpointResult dicts in training order.

Every rule is a callable `rule(results) -> network name | None`: given the analyzed
checkpoints of one run so far (docs/CONTRACTS.md result schema, oldest first), it names the
network that makes training stop at the newest checkpoint, or returns None. The daemon calls
its rule after every analyzed checkpoint on exactly this list, so a rule here moves into
`alphawatch/service/stop_rule.py` nearly verbatim; the study finds each rule's first firing
by calling it on every prefix (`first_fire`), which also proves no rule peeks ahead.

Pieces:
- `network_role(name)`: policy / critic / target / value / model, from the names alphawatch
  gives networks (SB3 zips: `actor`, `critic`, `critic_target`; the SAC example: `actor`,
  `critic_1`, `target_critic_2`; supervised checkpoints: `model`).
- statistics of one NetworkResult: mean alpha (the guide's), min layer alpha, share of layers
  below 2, and the mean / min alpha of *trusted* layers only (`TrustedLayers`).
- `ThresholdRule` (statistic below a threshold for `patience` checkpoints in a row) and
  `TrendRule` (alpha fell, then flattened).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

Result = Mapping[str, Any]
Network = Mapping[str, Any]
Statistic = Callable[[Network], "float | None"]
Rule = Callable[[Sequence[Result]], "str | None"]

# Networks that act or predict; critics, targets and value heads only serve training.
ACTING_ROLES = frozenset({"policy", "model"})

_TOKEN = re.compile(r"[a-z]+|\d+")


def network_role(name: str) -> str:
    """The role of a network from its name (checked in this order):
    target (`critic_target`, `target_critic_1`, `q_net_target`) > critic (`critic*`, `qf*`,
    `q_net`, `q`) > value (`value*`, `vf`) > policy (`actor*`, `policy*`, `pi`) > model."""
    tokens = _TOKEN.findall(name.lower())
    if any(t.startswith("target") for t in tokens):
        return "target"
    if any(t.startswith("critic") or t in ("q", "qf", "qnet") for t in tokens):  # q_net -> "q", "net"
        return "critic"
    if any(t.startswith("value") or t == "vf" for t in tokens):
        return "value"
    if any(t.startswith("actor") or t.startswith("policy") or t == "pi" for t in tokens):
        return "policy"
    return "model"


# ----------------------------------------------------------------------------- statistics
def fitted(layer: Mapping[str, Any]) -> bool:
    """The layer's power-law fit succeeded (status ok, with an alpha)."""
    return layer.get("status") == "ok" and isinstance(layer.get("alpha"), (int, float))


def ok_layers(network: Network) -> list[Mapping[str, Any]]:
    return [layer for layer in network.get("layers") or [] if fitted(layer)]


def mean_alpha(network: Network) -> float | None:
    """The network's mean alpha as alphawatch reports it (`summary.alpha`)."""
    alpha = (network.get("summary") or {}).get("alpha")
    return float(alpha) if isinstance(alpha, (int, float)) and not isinstance(alpha, bool) else None


def min_alpha(network: Network) -> float | None:
    alphas = [float(layer["alpha"]) for layer in ok_layers(network)]
    return min(alphas) if alphas else None


def share_below(threshold: float = 2.0) -> Statistic:
    """Share of fitted layers with alpha below `threshold` (None when no layer fitted)."""
    def statistic(network: Network) -> float | None:
        alphas = [float(layer["alpha"]) for layer in ok_layers(network)]
        return sum(a < threshold for a in alphas) / len(alphas) if alphas else None
    statistic.__qualname__ = f"share_below({threshold:g})"
    return statistic


@dataclass(frozen=True)
class TrustedLayers:
    """A layer's alpha is trusted when its power-law tail holds at least `min_spikes`
    eigenvalues and the fit's KS distance D is at most `max_d` (see the study report for
    how the thresholds were chosen: below them, alpha jumps between near-identical
    checkpoints)."""

    min_spikes: int = 50
    max_d: float = 0.10

    def __call__(self, layer: Mapping[str, Any]) -> bool:
        spikes, d = layer.get("num_pl_spikes"), layer.get("D")
        return (fitted(layer) and isinstance(spikes, int) and spikes >= self.min_spikes
                and isinstance(d, (int, float)) and d <= self.max_d)

    def count(self, network: Network) -> int:
        """Trusted layers of a network (the proposed `alphawatch_layers_trusted`)."""
        return sum(1 for layer in network.get("layers") or [] if self(layer))

    def mean_alpha(self, network: Network) -> float | None:
        alphas = [float(layer["alpha"]) for layer in network.get("layers") or [] if self(layer)]
        return sum(alphas) / len(alphas) if alphas else None

    def min_alpha(self, network: Network) -> float | None:
        alphas = [float(layer["alpha"]) for layer in network.get("layers") or [] if self(layer)]
        return min(alphas) if alphas else None


# ----------------------------------------------------------------------------- helpers
def networks_seen(results: Sequence[Result], roles: frozenset[str] | None) -> list[str]:
    """Names of networks in `results` (first-seen order) whose role is in `roles` (None: all)."""
    names: list[str] = []
    for result in results:
        for name in result.get("networks") or {}:
            if name not in names and (roles is None or network_role(name) in roles):
                names.append(name)
    return names


def network_of(result: Result, name: str) -> Network:
    return (result.get("networks") or {}).get(name) or {}


def first_fire(results: Sequence[Result], rule: Rule) -> tuple[int, str] | None:
    """(index of the first checkpoint at which `rule` fires, network), calling it on every
    prefix as the daemon does after each analyzed checkpoint; None when it never fires."""
    for i in range(len(results)):
        network = rule(results[: i + 1])
        if network is not None:
            return i, network
    return None


# ----------------------------------------------------------------------------- rules
@dataclass(frozen=True)
class ThresholdRule:
    """Fires when, for ANY selected network, `statistic` is below `threshold` (or at/above
    it with `above=True`) at each of the last `patience` checkpoints, once at least
    `min_checkpoints` have been analyzed. A checkpoint where the statistic is unknown (no
    fitted or trusted layer) breaks the streak: unknown is not "below". The network with
    the most extreme newest value is reported."""

    statistic: Statistic
    threshold: float = 2.0
    roles: frozenset[str] | None = None
    patience: int = 1
    min_checkpoints: int = 1
    above: bool = False

    def __call__(self, results: Sequence[Result]) -> str | None:
        if len(results) < max(self.min_checkpoints, self.patience):
            return None
        window = results[-self.patience:]
        firing: list[tuple[float, str]] = []
        for name in networks_seen(results, self.roles):
            values = [self.statistic(network_of(r, name)) for r in window]
            if all(v is not None and ((v >= self.threshold) if self.above else (v < self.threshold))
                   for v in values):
                newest = float(values[-1])  # type: ignore[arg-type]
                firing.append((-newest if self.above else newest, name))
        return min(firing)[1] if firing else None


@dataclass(frozen=True)
class TrendRule:
    """Alpha fell, then flattened: for ANY selected network, the statistic has dropped at
    least `drop` below its highest value so far, and over the last `window` checkpoints it
    moved by at most `flat` (max - min); optionally only below `ceiling`. Meant to catch
    "learning has finished" rather than a fixed alpha level."""

    statistic: Statistic
    drop: float = 1.0
    flat: float = 0.1
    window: int = 3
    ceiling: float | None = None
    roles: frozenset[str] | None = None
    min_checkpoints: int = 4

    def __call__(self, results: Sequence[Result]) -> str | None:
        if len(results) < max(self.min_checkpoints, self.window):
            return None
        for name in networks_seen(results, self.roles):
            series = [self.statistic(network_of(r, name)) for r in results]
            recent = [v for v in series[-self.window:] if v is not None]
            if len(recent) < self.window:  # unknown in the window: no judgement
                continue
            peak, now = max(v for v in series if v is not None), recent[-1]
            fell = peak - now >= self.drop
            flat = max(recent) - min(recent) <= self.flat
            if fell and flat and (self.ceiling is None or now < self.ceiling):
                return name
        return None
