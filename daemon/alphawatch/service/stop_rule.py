"""The stop rule: should training stop, given the analyzed checkpoints of one run? (pure)

    signal = evaluate(recent, analyzed, stop_config, run, history)   # a Signal to write, or None

`recent` are the run's newest *distinct* analyzed checkpoints in training order (the ledger
gives them: `alphawatch.ordering` for the order, copies of one checkpoint dropped by their
`results.fingerprint`), at least `window(config)` of them when there are that many;
`analyzed` is how many distinct checkpoints the run has in all. So one evaluation costs
the same however long the run is: the daemon re-evaluates after every checkpoint.

A rule (`RULES`, chosen by `stop.rule`) is a statistic of one network at one checkpoint, the
network roles that may halt training, a patience and a minimum number of checkpoints. It
fires when at least `min_checkpoints` checkpoints were analyzed and, for ANY network it
looks at, the statistic met the rule at each of the last `patience` checkpoints. A
checkpoint where that network has no reading (absent, no fitted or trusted layer) breaks
the streak: unknown is not "below". When several networks fire at once, the one furthest
past the line at the newest checkpoint is reported (then the name).

Why these rules and these defaults: bench/stop_signal trained 24 runs (MLP, CNN and char-LM with
true, noisy and random labels; SB3 SAC on two tasks) and scored every candidate against the
held-out loss or the evaluation return. `share_below` on plain models (patience 2) is the
only candidate with no false stop on a healthy run, and it is the least wrong, not a good
predictor: it caught 2 of 12 over-fitting runs. The guide's rule (`guide`) stopped 5 of 6
healthy SAC runs before they learned, because critics and targets fall below 2 with the
number of updates, whatever the return. README, "How good is the stop signal?".

`recommended_checkpoint` is `alphawatch.analysis.trend.recommend` on the triggering
network's alphas alone, over the whole history in the same order: the checkpoint whose
mean alpha was closest to the threshold from above before it first fell below.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from alphawatch import __version__
from alphawatch.analysis.health import is_trusted
from alphawatch.analysis.roles import ROLES, network_role
from alphawatch.analysis.trend import recommend
from alphawatch.client import Signal
from alphawatch.results import CheckpointResult, NetworkResult, network_alpha

if TYPE_CHECKING:
    from alphawatch.config import StopConfig

SIGNAL_FORMAT_VERSION = 1


@dataclass(frozen=True)
class Rule:
    """A named rule's statistic and its own defaults (each can be overridden in `stop:`)."""

    statistic: str  # "share_below" | "mean" | "trusted_min"
    roles: tuple[str, ...]
    patience: int
    min_checkpoints: int
    describes: str  # what `value` in the stop file is


RULES: dict[str, Rule] = {
    "share_below": Rule("share_below", ("model",), 2, 2, "share of the fitted layers with alpha below"),
    "guide": Rule("mean", ROLES, 1, 1, "mean alpha"),
    "trusted_min": Rule("trusted_min", ("model",), 2, 2, "lowest alpha of a trusted layer"),
}
RULE_NAMES = tuple(RULES)


@dataclass(frozen=True)
class Resolved:
    """The rule as configured: the named rule with the `stop:` section's overrides applied."""

    name: str
    statistic: str
    roles: tuple[str, ...]
    networks: tuple[str, ...]
    threshold: float
    share: float
    patience: int
    min_checkpoints: int


def resolve(config: StopConfig) -> Resolved:
    rule = RULES[config.rule]
    return Resolved(
        name=config.rule, statistic=rule.statistic,
        roles=rule.roles if config.roles is None else config.roles,
        networks=config.networks, threshold=config.threshold, share=config.share,
        patience=rule.patience if config.patience is None else config.patience,
        min_checkpoints=rule.min_checkpoints if config.min_checkpoints is None else config.min_checkpoints,
    )


def window(config: StopConfig) -> int:
    """How many of the newest distinct checkpoints `fires` needs to see."""
    return resolve(config).patience


def reading(net: NetworkResult, rule: Resolved) -> tuple[bool, float] | None:
    """(does this network meet the rule, the statistic's value), or None without a reading."""
    fitted = [a for layer in net["layers"] if layer["status"] == "ok" and (a := layer["alpha"]) is not None]
    if rule.statistic == "share_below":
        if not fitted:
            return None
        share = sum(a < rule.threshold for a in fitted) / len(fitted)
        return share >= rule.share, share
    if rule.statistic == "trusted_min":
        trusted = [a for layer in net["layers"] if is_trusted(layer) and (a := layer["alpha"]) is not None]
        return (min(trusted) < rule.threshold, min(trusted)) if trusted else None
    alpha = net["summary"]["alpha"]
    return None if alpha is None else (alpha < rule.threshold, alpha)


def looked_at(result: CheckpointResult, rule: Resolved) -> list[str]:
    """The networks of `result` the rule judges: by name when `networks` is set, else by role."""
    if rule.networks:
        return [n for n in rule.networks if n in result["networks"]]
    return [n for n in result["networks"] if network_role(n, result["format"]) in rule.roles]


def fires(recent: Sequence[CheckpointResult], analyzed: int, config: StopConfig) -> tuple[str, float] | None:
    """(network, the statistic at the newest checkpoint) when the rule fires, else None."""
    rule = resolve(config)
    if not config.enabled or not recent or analyzed < rule.min_checkpoints or len(recent) < rule.patience:
        return None
    streak = list(recent)[-rule.patience:]
    firing: list[tuple[float, str, float]] = []
    for network in looked_at(streak[-1], rule):
        readings = [reading(r["networks"][network], rule) if network in r["networks"] else None
                    for r in streak]
        met = [value for found in readings if found is not None and found[0] for value in found[1:]]
        if len(met) == len(streak):
            value = met[-1]
            firing.append((-value if rule.statistic == "share_below" else value, network, value))
    if not firing:
        return None
    _, network, value = min(firing)
    return network, value


def recommended(history: Sequence[CheckpointResult], network: str, threshold: float) -> str | None:
    """The checkpoint to go back to, judged on `network` alone, `history` in training order."""
    return recommend([r["path"] for r in history], [network_alpha(r, network) for r in history], threshold)


def stop_signal(newest: CheckpointResult, network: str, value: float, config: StopConfig, run: str,
                analyzed: int, recommended_checkpoint: str | None, now: datetime | None = None) -> Signal:
    """The signal to write for a rule that fired on `newest`."""
    rule = resolve(config)
    streak = (f"for {rule.patience} consecutive checkpoints" if rule.patience > 1
              else "at the newest checkpoint")
    step = newest["step"]
    at = f" (step {step})" if step is not None else ""
    if rule.statistic == "share_below":
        what = (f"{value:.0%} of the fitted layers of {network} have alpha below {rule.threshold:g} "
                f"(at least {rule.share:.0%} needed) {streak}{at}")
        metric, threshold = "share_of_layers_below_threshold", rule.share
    else:
        label = "mean alpha" if rule.statistic == "mean" else "lowest trusted-layer alpha"
        what = f"{label} of {network} is {value:.3f}, below the threshold {rule.threshold:g} {streak}{at}"
        metric, threshold = ("alpha" if rule.statistic == "mean" else "trusted_alpha_min"), rule.threshold
    created = (now or datetime.now(UTC)).astimezone(UTC)
    return Signal(
        stop=True,
        reason=f"{what}: the network is over-fitting (rule {rule.name})",
        run=run,
        network=network,
        metric=metric,
        value=value,
        threshold=threshold,
        checkpoint=newest["path"],
        step=step,
        recommended_checkpoint=recommended_checkpoint,
        created_at=created.strftime("%Y-%m-%dT%H:%M:%SZ"),
        version=SIGNAL_FORMAT_VERSION,
        extra={"alphawatch_version": __version__, "rule": rule.name, "alpha_threshold": rule.threshold,
               "patience": rule.patience, "checkpoints_analyzed": analyzed},
    )


def evaluate(recent: Sequence[CheckpointResult], analyzed: int, config: StopConfig, run: str,
             history: Callable[[], Sequence[CheckpointResult]], now: datetime | None = None) -> Signal | None:
    """The signal to write when the rule fires on the newest of `recent`, else None.

    `history()` (every distinct analyzed checkpoint, in training order) is called only when
    the rule fires, for the recommendation: once per run, not once per checkpoint.
    """
    hit = fires(recent, analyzed, config)
    if hit is None:
        return None
    network, value = hit
    return stop_signal(recent[-1], network, value, config, run, analyzed,
                       recommended(history(), network, config.threshold), now)
