"""One PNG per run: alpha per network (top) and the ground-truth metric (bottom) against
step, with the ground-truth point and the key rules' fire points marked."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from bench.stop_signal.evaluate import Outcome, Run
from bench.stop_signal.rules import TrustedLayers, mean_alpha, network_role

_MARKERS = ("v", "^", "s", "D", "P", "X", "*")


def plot_run(run: Run, outcomes: Mapping[str, Outcome], trusted: TrustedLayers, path: Path,
             rules: Sequence[str]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [r["step"] for r in run.results]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(11, 6.5), sharex=True, height_ratios=(3, 2))
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
    ylo, yhi = top.get_ylim()
    for j, rule in enumerate(rules):
        fire = outcomes[rule].fire_step
        label = f"{rule}: fires @ {fire}" if fire is not None else f"{rule}: never fires"
        color = f"C{(j + 3) % 10}"
        if fire is None:
            top.plot([], [], _MARKERS[j % len(_MARKERS)], ms=7, color=color, alpha=0.3, label=label)
            continue
        top.plot([fire], [yhi - (0.05 + 0.06 * j) * (yhi - ylo)], _MARKERS[j % len(_MARKERS)], ms=7,
                 color=color, label=label)
        for ax in (top, bottom):
            ax.axvline(fire, color=color, lw=0.8, ls=":")
    top.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    bottom.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    top.set_title(f"{run.spec.name}: {truth.label} (ground truth at step {truth.gt_step})", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
