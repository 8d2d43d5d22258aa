"""The candidate rules the study scores, by name (the order breaks ties: simpler first).

`trusted` (min tail size, max KS distance) comes from the jitter analysis in `trust.py`,
chosen on the development seeds only.
"""

from __future__ import annotations

from bench.stop_signal.rules import (
    ACTING_ROLES,
    Rule,
    ThresholdRule,
    TrendRule,
    TrustedLayers,
    mean_alpha,
    min_alpha,
    share_below,
)

GUIDE = "guide"
# Rules in the report's summary table (the chosen one is added).
SUMMARY_RULES = ("guide", "guide-p2", "acting-p2", "actor-only-p2", "critics-p2", "model-only-p2",
                 "share-below-model-p2", "min-layer-p1", "trusted-acting-p2", "trusted-model-p2",
                 "trusted-min-model-p2", "trusted-min-model-p3", "trend-trusted-acting")
# Rules drawn in every per-run plot (the recommended one is added).
KEY_RULES = ("guide", "acting-p2", "min-layer-p1", "trusted-acting-p2", "trusted-min-model-p2")


def candidates(trusted: TrustedLayers) -> dict[str, Rule]:
    acting, critic, target = ACTING_ROLES, frozenset({"critic"}), frozenset({"target"})
    policy, model = frozenset({"policy"}), frozenset({"model"})
    rules: dict[str, Rule] = {
        # the guide's rule, today's shipped default: any network's mean alpha < 2, at once
        GUIDE: ThresholdRule(mean_alpha),
        "guide-p2": ThresholdRule(mean_alpha, patience=2),
        "guide-p3": ThresholdRule(mean_alpha, patience=3),
        # network roles: actor/policy and plain models vs critics, targets
        "acting-p1": ThresholdRule(mean_alpha, roles=acting),
        "acting-p2": ThresholdRule(mean_alpha, roles=acting, patience=2),
        "acting-p3": ThresholdRule(mean_alpha, roles=acting, patience=3),
        "actor-only-p2": ThresholdRule(mean_alpha, roles=policy, patience=2),
        "critics-p2": ThresholdRule(mean_alpha, roles=critic, patience=2),
        "targets-p2": ThresholdRule(mean_alpha, roles=target, patience=2),
        # plain models only: no RL network (actor, critic, target, value) halts training
        "model-only-p2": ThresholdRule(mean_alpha, roles=model, patience=2),
        # the lowest layer alpha
        "min-layer-p1": ThresholdRule(min_alpha),
        "min-layer-acting-p2": ThresholdRule(min_alpha, roles=acting, patience=2),
        "min-layer-acting-p3": ThresholdRule(min_alpha, roles=acting, patience=3),
        "min-layer-model-p2": ThresholdRule(min_alpha, roles=model, patience=2),
        # half the layers or more below 2
        "share-below-acting-p1": ThresholdRule(share_below(2.0), threshold=0.5, above=True, roles=acting),
        "share-below-acting-p2": ThresholdRule(share_below(2.0), threshold=0.5, above=True, roles=acting,
                                               patience=2),
        "share-below-model-p2": ThresholdRule(share_below(2.0), threshold=0.5, above=True, roles=model,
                                              patience=2),
        # trusted layers only (enough tail eigenvalues, small KS distance)
        "trusted-all-p1": ThresholdRule(trusted.mean_alpha),
        "trusted-all-p2": ThresholdRule(trusted.mean_alpha, patience=2),
        "trusted-acting-p1": ThresholdRule(trusted.mean_alpha, roles=acting),
        "trusted-acting-p2": ThresholdRule(trusted.mean_alpha, roles=acting, patience=2),
        "trusted-acting-p3": ThresholdRule(trusted.mean_alpha, roles=acting, patience=3),
        "trusted-model-p2": ThresholdRule(trusted.mean_alpha, roles=model, patience=2),
        "trusted-min-acting-p2": ThresholdRule(trusted.min_alpha, roles=acting, patience=2),
        "trusted-min-acting-p3": ThresholdRule(trusted.min_alpha, roles=acting, patience=3),
        "trusted-min-model-p2": ThresholdRule(trusted.min_alpha, roles=model, patience=2),
        "trusted-min-model-p3": ThresholdRule(trusted.min_alpha, roles=model, patience=3),
        # alpha fell, then flattened
        "trend-acting": TrendRule(mean_alpha, roles=acting),
        "trend-trusted-acting": TrendRule(trusted.mean_alpha, drop=0.3, flat=0.05, roles=acting),
    }
    return rules


_STATISTICS = {
    "mean_alpha": "network mean alpha",
    "min_alpha": "lowest layer alpha",
    "TrustedLayers.mean_alpha": "mean alpha of trusted layers",
    "TrustedLayers.min_alpha": "lowest trusted-layer alpha",
}


def describe(rule: Rule) -> str:
    """One line saying exactly what a candidate rule checks."""
    stat = getattr(rule, "statistic", None)
    qual = getattr(stat, "__qualname__", "?")
    share = f"share of layers with alpha below {qual[12:-1]}" if qual.startswith("share_below") else qual
    what = _STATISTICS.get(qual, share)
    roles = getattr(rule, "roles", None)
    where = "any network" if roles is None else "any network with role " + "/".join(sorted(roles))
    if isinstance(rule, ThresholdRule):
        cmp = "≥" if rule.above else "<"
        return (f"{what} {cmp} {rule.threshold:g} on {where}, {rule.patience} checkpoint(s) in a row, "
                f"min_checkpoints {rule.min_checkpoints}")
    if isinstance(rule, TrendRule):
        ceiling = f", below {rule.ceiling:g}" if rule.ceiling is not None else ""
        return (f"{what} on {where} has fallen ≥ {rule.drop:g} below its peak and moved ≤ {rule.flat:g} "
                f"over the last {rule.window} checkpoints{ceiling} (min_checkpoints {rule.min_checkpoints})")
    return repr(rule)
