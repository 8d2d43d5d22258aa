"""One PNG per run: alpha per network (top) and the ground-truth metric (bottom) against
step, with the ground-truth point and the key rules' fire points marked."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from bench.signal.evaluate import Outcome, Run
from bench.signal.rules import TrustedLayers, mean_alpha, network_role

_MARKERS = ("v", "^", "s", "D", "P", "X", "*")


def plot_run(run: Run, outcomes: Mapping[str, Outcome], trusted: TrustedLayers, path: Path,
             rules: Sequence[str]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [r["step"] for r in run.results]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 6), sharex=True, height_ratios=(3, 2))
    names = list(run.results[0]["networks"])
    for i, name in enumerate(names):
        nets = [r["networks"].get(name) or {} for r in run.results]
        color = f"C{i}"
        top.plot(steps, [mean_alpha(n) for n in nets], "-o", ms=3, color=color,
                 label=f"{name} ({network_role(name)}) mean alpha")
        trusted_alpha = [trusted.mean_alpha(n) for n in nets]
        if any(a is not None for a in trusted_alpha):
            top.plot(steps, trusted_alpha, "--", color=color, alpha=0.7, label=f"{name} trusted-layer alpha")
    top.axhline(2.0, color="grey", lw=0.8, ls=":")
    top.set_ylabel("alpha")
    truth = run.truth
    metric_name = "eval return (5 episodes)" if truth.kind == "rl" else "held-out loss"
    bottom.plot(steps, truth.metric, "-o", ms=3, color="black", label=metric_name)
    bottom.set_ylabel(metric_name)
    bottom.set_xlabel("step")
    for ax in (top, bottom):
        if truth.gt_step is not None:
            ax.axvline(truth.gt_step, color="green", lw=1.2, label="ground truth" if ax is top else None)
        if truth.collapse_step is not None:
            ax.axvline(truth.collapse_step, color="red", lw=1.2, ls="--",
                       label="collapse" if ax is top else None)
    ymax = top.get_ylim()[1]
    for j, rule in enumerate(rules):
        fire = outcomes[rule].fire_step
        if fire is not None:
            top.plot([fire], [ymax - 0.04 * (j + 1) * ymax], _MARKERS[j % len(_MARKERS)], ms=8,
                     color=f"C{(j + 3) % 10}", label=f"fires: {rule} @ {fire}")
    top.legend(fontsize=6, loc="upper right")
    bottom.legend(fontsize=7, loc="best")
    top.set_title(f"{run.spec.name}: {truth.label} (ground truth at step {truth.gt_step})", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
