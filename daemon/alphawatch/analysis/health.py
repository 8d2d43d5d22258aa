"""Verdicts and potential issues from the numbers (pure; no torch, no weightwatcher).

Alpha bands come from the WeightWatcher papers and docs (Martin & Mahoney): alpha < 2 means
the layer's spectrum is heavier-tailed than well-trained layers ever get (over-fit / over-
trained; WW warns "over-trained" below 2.0), 2-6 is the well-trained range with ~2 the
sweet spot, and alpha > 6 is WW's "under-trained" warning. The finer split (2-2.5 optimal,
2.5-5 good, 5-6 undertrained) is the guide's. Edges: each band includes its lower edge;
6.0 itself is still "undertrained" (WW warns only for alpha > 6).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from alphawatch.analysis.roles import network_role
from alphawatch.results import NAN_REASON, HealthState, Issue, LayerResult, NetworkResult

HEALTH_STATES: tuple[HealthState, ...] = (
    "overfit", "optimal", "good", "undertrained", "severely_undertrained", "unknown")
DEAD_NEURON_STATES = ("good", "moderate", "high", "critical", "unknown")

# Potential-issue thresholds (documented in docs/analysis.md).
ALPHA_STD_HIGH = 1.5  # std of layer alphas within one network
SPECTRAL_NORM_HIGH = 5.0  # largest singular value sigma_max of a layer
LOG_SPECTRAL_NORM_HIGH = math.log10(SPECTRAL_NORM_HIGH**2)  # WW's log10(sigma_max^2) ~ 1.398
STABLE_RANK_UTILIZATION_LOW = 0.20  # stable rank / full rank
ACTOR_CRITIC_ALPHA_GAP = 2.0

# A layer's alpha is trusted when its fit succeeded, its power-law tail holds at least this many
# eigenvalues and its KS distance is at most this. Chosen by bench/stop_signal (trust.py) on the
# development seeds as the loosest setting under which 95% of trusted readings agree within 0.25
# between consecutive checkpoints and between seeds; on the held-out seed trusted readings agree
# 100% / 97% of the time, untrusted ones 82% / 36%.
TRUSTED_MIN_SPIKES = 10
TRUSTED_MAX_D = 0.075


def is_trusted(layer: LayerResult) -> bool:
    """Is this layer's alpha well estimated (see TRUSTED_MIN_SPIKES / TRUSTED_MAX_D)?"""
    spikes, d = layer["num_pl_spikes"], layer["D"]
    return (layer["status"] == "ok" and layer["alpha"] is not None and spikes is not None
            and spikes >= TRUSTED_MIN_SPIKES and d is not None and d <= TRUSTED_MAX_D)


def alpha_verdict(alpha: float | None) -> HealthState:
    """One of HEALTH_STATES for a (mean) alpha."""
    if alpha is None or not math.isfinite(alpha):
        return "unknown"
    if alpha < 2.0:
        return "overfit"
    if alpha < 2.5:
        return "optimal"
    if alpha < 5.0:
        return "good"
    if alpha <= 6.0:
        return "undertrained"
    return "severely_undertrained"


def dead_neuron_status(ratio: float | None) -> str:
    """< 5% good, 5-15% moderate, 15-30% high, > 30% critical (lower edges inclusive)."""
    if ratio is None or not math.isfinite(ratio):
        return "unknown"
    if ratio < 0.05:
        return "good"
    if ratio < 0.15:
        return "moderate"
    if ratio <= 0.30:
        return "high"
    return "critical"


def _names(layers: Sequence[LayerResult], limit: int = 3) -> str:
    names = [layer["name"] for layer in layers]
    more = f", +{len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def network_issues(network: str, result: NetworkResult) -> list[Issue]:
    """Potential issues of one NetworkResult."""
    summary, layers = result["summary"], result["layers"]
    found: list[tuple[str, str]] = []
    nan_layers = [x for x in layers if x["reason"] == NAN_REASON]
    if nan_layers:
        found.append(("nan_weights", f"NaN/Inf weights in {len(nan_layers)} layer(s) "
                      f"({_names(nan_layers)}): checkpoint corrupt or training numerically unstable"))
    alpha = summary["alpha"]
    if alpha is not None and alpha < 2.0:
        found.append(("overfit", f"mean alpha {alpha:.2f} < 2.0: overfit (early-stopping signal)"))
    elif alpha is not None and alpha > 6.0:
        found.append(("undertrained",
                      f"mean alpha {alpha:.2f} > 6.0: severely undertrained (or not learning)"))
    fitted = [x for x in layers if x["status"] == "ok"]
    if len(fitted) == 1:
        only = fitted[0]
        shape = "x".join(str(d) for d in only["shape"])
        found.append(("single_layer", f"alpha rests on a single layer ({only['name']}, {shape}, "
                      f"{only['num_pl_spikes']} tail eigenvalues, "
                      f"{'trusted' if is_trusted(only) else 'not a trusted fit'}): one noisy fit, "
                      "not a network-wide reading"))
    std = summary["alpha_std"]
    if std is not None and summary["layers_analyzed"] >= 2 and std > ALPHA_STD_HIGH:
        found.append(("alpha_variance",
                      f"high alpha variance across layers (std {std:.2f} > {ALPHA_STD_HIGH})"))
    loud = [x for x in layers
            if x["status"] == "ok" and (x["log_spectral_norm"] or 0.0) > LOG_SPECTRAL_NORM_HIGH]
    if loud:
        top = max(x["log_spectral_norm"] or 0.0 for x in loud)
        found.append(("spectral_norm", f"spectral norm > {SPECTRAL_NORM_HIGH:g} (largest singular value, "
                      f"up to {10 ** (top / 2):.1f}) in {len(loud)} layer(s) ({_names(loud)}): "
                      "possibly unstable"))
    util = summary["stable_rank_utilization"]
    if util is not None and util < STABLE_RANK_UTILIZATION_LOW:
        found.append(("low_stable_rank", f"stable rank uses {util:.0%} of full rank "
                      f"(< {STABLE_RANK_UTILIZATION_LOW:.0%}): possibly over-parameterised"))
    failed = [x for x in layers if x["status"] == "failed" and x["reason"] != NAN_REASON]
    if failed:
        found.append(("fit_failed",
                      f"power-law fit failed in {len(failed)} layer(s) ({_names(failed)}); excluded"))
    dead = summary["dead_neurons"]
    if dead["status"] in ("high", "critical") and dead["ratio"] is not None:
        found.append(("dead_neurons", f"{dead['status']} dead-neuron ratio {dead['ratio']:.1%} "
                      f"({dead['count']}/{dead['total']}, {dead['method']}-based)"))
    return [{"network": network, "code": code, "message": message} for code, message in found]


def _role_alpha(networks: Mapping[str, NetworkResult], role: str) -> float | None:
    alphas = [alpha for name, r in networks.items()
              if network_role(name) == role and (alpha := r["summary"]["alpha"]) is not None]
    return sum(alphas) / len(alphas) if alphas else None


def actor_critic_issue(networks: Mapping[str, NetworkResult]) -> Issue | None:
    """Actor vs critic alpha mismatch: |mean policy alpha - mean critic alpha| > 2 (targets ignored)."""
    actor, critic = _role_alpha(networks, "policy"), _role_alpha(networks, "critic")
    if actor is None or critic is None or abs(actor - critic) <= ACTOR_CRITIC_ALPHA_GAP:
        return None
    return {"network": None, "code": "actor_critic_mismatch", "message": (
        f"actor vs critic alpha mismatch: actor {actor:.2f}, critic {critic:.2f} "
        f"(|difference| > {ACTOR_CRITIC_ALPHA_GAP:g}): they are learning at different rates")}


def checkpoint_issues(networks: Mapping[str, NetworkResult]) -> list[Issue]:
    """All potential issues of a checkpoint: per network, then across networks."""
    issues = [issue for name, result in networks.items() for issue in network_issues(name, result)]
    mismatch = actor_critic_issue(networks)
    if mismatch:
        issues.append(mismatch)
    return issues


def issue_text(issue: Issue) -> str:
    """One line naming the network: `actor: mean alpha 1.87 < 2.0: ...`."""
    return f"{issue['network']}: {issue['message']}" if issue["network"] else issue["message"]
