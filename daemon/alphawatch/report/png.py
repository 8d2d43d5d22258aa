"""PNG plots: `<network>_health_metrics.png` (four panels, the newest checkpoint holding the
network), and for several checkpoints `<network>_layers_over_training.png` (every layer's
alpha at every checkpoint, and the network's means) and `alpha_over_training.png`.

matplotlib is imported here only, inside the functions, and only its Agg canvas is used
(`Figure` + `FigureCanvasAgg`, never `pyplot`): no display is needed, importing
`alphawatch.report` stays cheap, and a user calling the API from a notebook keeps their
own pyplot backend and state untouched.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from alphawatch.analysis.roles import network_role
from alphawatch.report.csv_report import safe_name
from alphawatch.report.text import checkpoint_label, fmt_shape
from alphawatch.results import CheckpointResult, Document, NetworkResult, Trend

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

TREND_FILENAME = "alpha_over_training.png"
MAX_NAMED_LAYERS = 24  # beyond this, x ticks show layer indices instead of names

# (low, high, colour, label): the guide's alpha bands, used by both plots.
BANDS = (
    (0.0, 2.0, "#d62728", "overfit (< 2)"),
    (2.0, 2.5, "#2ca02c", "optimal (2-2.5)"),
    (2.5, 5.0, "#98df8a", "good (2.5-5)"),
    (5.0, 6.0, "#ffbb78", "undertrained (5-6)"),
    (6.0, float("inf"), "#c7c7c7", "severely undertrained (> 6)"),
)


def metrics_filename(network: str) -> str:
    """`actor` -> `actor_health_metrics.png`."""
    return f"{safe_name(network)}_health_metrics.png"


def layers_filename(network: str) -> str:
    """`actor` -> `actor_layers_over_training.png`."""
    return f"{safe_name(network)}_layers_over_training.png"


def _new_figure(width: float, height: float) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _full_rank(shape: Sequence[int] | None) -> int | None:
    """min(rows, cols) of the matrix (of each kernel slice for convolutions)."""
    if not shape or len(shape) < 2:
        return None
    return int(min(shape[0], shape[1]))


def _layer_axis(ax: Axes, labels: Sequence[str]) -> None:
    """Layer names as x ticks when they fit, else indices (a transformer has hundreds)."""
    positions = list(range(len(labels)))
    if len(labels) <= MAX_NAMED_LAYERS:
        ax.set_xticks(positions, labels, rotation=40, ha="right", fontsize=8)
        ax.set_xlabel("layer")
    else:
        ax.set_xlabel(f"layer index (0-{len(labels) - 1}; names in the CSV)")
    ax.set_xlim(-0.6, len(labels) - 0.4)


def _mark_missing(ax: Axes, values: Sequence[float | None], statuses: Sequence[str]) -> None:
    """Say `skipped` / `failed` where a layer has no value, so a gap is not read as zero."""
    from matplotlib.transforms import blended_transform_factory

    where = blended_transform_factory(ax.transData, ax.transAxes)
    for i, v in enumerate(values):
        if v is None:
            word = statuses[i] if statuses[i] in ("skipped", "failed") else "no value"
            ax.text(i, 0.03, word, transform=where, rotation=90, ha="center", va="bottom",
                    color="dimgrey", fontsize=9, style="italic")


def _alpha_histogram(ax: Axes, alphas: Sequence[float]) -> None:
    ax.axvspan(2.0, 5.0, color="#2ca02c", alpha=0.18, label="healthy band (2-5)")
    if alphas:
        lo, hi = min(min(alphas), 1.5) - 0.5, max(max(alphas), 6.5) + 0.5
        width = max(0.1, round((hi - lo) / 40, 2))  # same bin width whatever the layer count
        edges = [lo + width * k for k in range(int((hi - lo) / width) + 2)]
        ax.hist(alphas, bins=edges, color="#1f77b4", edgecolor="white", label="layers")
        ax.set_xlim(lo, edges[-1])
        from matplotlib.ticker import MaxNLocator

        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylim(0, ax.get_ylim()[1] * 1.25)  # headroom for the legend
    else:
        ax.text(0.5, 0.5, "no layer could be fitted", ha="center", va="center", transform=ax.transAxes)
        ax.set_xlim(0, 8)
    ax.axvline(2.0, color="#d62728", lw=1, ls="--", label="2: overfit below")
    ax.set_title("Alpha distribution")
    ax.set_xlabel("alpha")
    ax.set_ylabel("layers")
    ax.legend(fontsize=8, loc="upper right", framealpha=0.9)


def _present(values: Sequence[float | None]) -> tuple[list[int], list[float]]:
    """Positions and values of the layers that have a value."""
    pairs = [(i, float(v)) for i, v in enumerate(values) if v is not None]
    return [i for i, _ in pairs], [v for _, v in pairs]


def _bar_by_layer(ax: Axes, values: Sequence[float | None], statuses: Sequence[str],
                  title: str, ylabel: str, color: str) -> None:
    xs, ys = _present(values)
    ax.bar(xs, ys, color=color, width=0.7)
    _mark_missing(ax, values, statuses)
    ax.set_title(title)
    ax.set_ylabel(ylabel)


def _stable_rank(ax: Axes, values: Sequence[float | None], ranks: Sequence[int | None],
                 statuses: Sequence[str]) -> None:
    _bar_by_layer(ax, values, statuses, "Stable rank by layer", "stable rank", "#9467bd")
    xs, full = _present(ranks)
    if xs:
        size = 400 * min(1.0, 12 / len(ranks))  # about a bar's width, however many layers
        ax.scatter(xs, full, marker="_", s=size, linewidths=2.5, color="black",
                   zorder=4, label="full rank (min of shape)")
        ax.set_yscale("log")
        positive = [v for v in [*_present(values)[1], *full] if v > 0]
        ax.set_ylim(bottom=min(positive, default=1.0) / 2)
        ax.legend(fontsize=8, loc="best")


def _alpha_by_layer(ax: Axes, values: Sequence[float | None], statuses: Sequence[str]) -> None:
    """Bars coloured by verdict band; the 2 / 5 / 6 lines are labelled on the plot itself,
    so no legend box can hide a bar."""
    from matplotlib.transforms import blended_transform_factory

    xs, ys = _present(values)
    ax.bar(xs, ys, color=[_band_colour(y) for y in ys], edgecolor="black", linewidth=0.5, width=0.7)
    _mark_missing(ax, values, statuses)
    right = blended_transform_factory(ax.transAxes, ax.transData)
    for y, colour, label in ((2.0, "#d62728", "overfit below 2"), (5.0, "#ff7f0e", "undertrained above 5"),
                             (6.0, "#7f7f7f", "severely undertrained above 6")):
        ax.axhline(y, color=colour, ls="--", lw=1.2, zorder=1)
        ax.text(0.995, y, label, transform=right, ha="right", va="bottom", fontsize=8, color=colour,
                bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.7, "pad": 1})
    top = max([v for v in values if v is not None] + [6.0])
    ax.set_ylim(0, top * 1.12 + 0.3)
    ax.set_title("Alpha by layer (bar colour = verdict band)")
    ax.set_ylabel("alpha")


def _band_colour(alpha: float) -> str:
    for low, high, colour, _ in BANDS:
        if low <= alpha < high:
            return colour
    return BANDS[0][2]


def plot_network(network: str, net: NetworkResult, path: Path, subtitle: str = "") -> Path:
    """The four-panel health figure for one network of one checkpoint."""
    layers = net["layers"]
    summary = net["summary"]
    labels = [f"{layer['name']}\n{fmt_shape(layer['shape'])}" for layer in layers]
    statuses = [layer["status"] for layer in layers]
    alphas = [layer["alpha"] for layer in layers]
    fig = _new_figure(13, 9)
    axes = fig.subplots(2, 2)
    _alpha_histogram(axes[0][0], [a for a in alphas if a is not None])
    _bar_by_layer(axes[0][1], [layer["log_spectral_norm"] for layer in layers], statuses,
                  "Log spectral norm by layer", "log10 spectral norm", "#17becf")
    _stable_rank(axes[1][0], [layer["stable_rank"] for layer in layers],
                 [_full_rank(layer["shape"]) for layer in layers], statuses)
    _alpha_by_layer(axes[1][1], alphas, statuses)
    for ax in (axes[0][1], axes[1][0], axes[1][1]):
        _layer_axis(ax, labels)
    alpha = summary["alpha"]
    verdict = summary["health"].replace("_", " ")
    headline = f"{network}: alpha {alpha:.2f} ({verdict})" if alpha is not None \
        else f"{network}: alpha n/a ({verdict})"
    fig.suptitle(headline + (f"\n{subtitle}" if subtitle else ""), fontsize=12)
    fig.savefig(path)
    return Path(path)


def _trend_x(steps: Sequence[int | None]) -> tuple[list[float], str]:
    """Steps when every checkpoint has one, else the position in the order."""
    if steps and all(s is not None for s in steps):
        return [float(s) for s in steps if s is not None], "training step"
    return [float(i) for i in range(len(steps))], "checkpoint (in order; some have no step)"


def plot_trend(trend: Trend, path: Path, threshold: float = 2.0) -> Path:
    """Alpha per network over training, on top of the shaded verdict bands."""
    order = trend["order"]
    xs, xlabel = _trend_x(trend["steps"])
    alphas = trend["alpha"]
    values = [v for series in alphas.values() for v in series if v is not None]
    y_low = min([threshold - 0.5, *values]) - 0.3
    y_high = max([6.5, *values]) + 0.5
    fig = _new_figure(11, 6)
    ax = fig.subplots()
    for low, high, colour, label in BANDS:
        ax.axhspan(max(low, y_low), min(high, y_high), color=colour, alpha=0.22, label=label, lw=0)
    markers = "osD^v<>ph*"
    for i, (network, series) in enumerate(alphas.items()):
        pts = [(x, v) for x, v in zip(xs, series, strict=False) if v is not None]
        if not pts:
            continue
        # target networks often equal their source: dashed, hollow and bigger, so both show
        target = network_role(network) == "target"
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker=markers[i % len(markers)],
                ls="--" if target else "-", lw=1.4 if target else 1.8, ms=10 if target else 6,
                markerfacecolor="none" if target else None, markeredgewidth=1.5,
                label=network, alpha=0.9)
    recommended = trend["recommended_checkpoint"]
    if recommended is not None and recommended in order:
        x = xs[list(order).index(recommended)]
        ax.axvline(x, color="black", ls=":", lw=1.5,
                   label=f"recommended: {checkpoint_label(recommended)}")
    ax.axhline(threshold, color="#d62728", lw=1.2)
    ax.set_ylim(y_low, y_high)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("alpha (mean over layers)")
    pattern = trend["pattern"].replace("_", " ")
    ax.set_title(f"Alpha over training: {pattern}" if pattern else "Alpha over training")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.savefig(path)
    return Path(path)


def _layer_matrix(checkpoints: Sequence[CheckpointResult], network: str
                  ) -> tuple[list[str], list[list[float | None]]]:
    """Layer names (first-seen order) and their alpha per checkpoint (None: absent or unfitted)."""
    names: dict[str, None] = {}
    for ckpt in checkpoints:
        if network in ckpt["networks"]:
            names.update(dict.fromkeys(layer["name"] for layer in ckpt["networks"][network]["layers"]))
    rows = []
    for name in names:
        row: list[float | None] = []
        for ckpt in checkpoints:
            net = ckpt["networks"].get(network)
            found = [layer["alpha"] for layer in net["layers"] if layer["name"] == name] if net else []
            row.append(found[0] if found else None)
        rows.append(row)
    return list(names), rows


def plot_layers_over_training(network: str, checkpoints: Sequence[CheckpointResult], path: Path,
                              threshold: float = 2.0) -> Path:
    """Every layer's alpha at every checkpoint (a heat map coloured by verdict band, so one
    layer sliding under 2 stands out even when the mean does not move), above the network's
    mean alpha, mean stable rank and mean log spectral norm over training."""
    from matplotlib.colors import BoundaryNorm, ListedColormap

    names, rows = _layer_matrix(checkpoints, network)
    held = [c for c in checkpoints if network in c["networks"]]
    xs, xlabel = _trend_x([c["step"] for c in checkpoints])
    fig = _new_figure(13, 5 + min(len(names), 40) * 0.18)
    top, bottom = fig.subplots(2, 1, height_ratios=[max(2, min(len(names), 40)) * 0.18 + 1, 2.2])
    edges = [band[0] for band in BANDS] + [1e9]
    cmap = ListedColormap([band[2] for band in BANDS]).with_extremes(bad="#f0f0f0")
    import numpy as np

    grid = np.ma.masked_invalid(np.array([[np.nan if v is None else v for v in row] for row in rows], float))
    top.imshow(grid if names else np.ma.masked_all((1, 1)), aspect="auto", interpolation="nearest",
               cmap=cmap, norm=BoundaryNorm(edges, cmap.N))
    if len(names) * len(checkpoints) <= 240:  # few enough cells to print each value
        for i, row in enumerate(rows):
            for j, value in enumerate(row):
                if value is not None:
                    top.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=7)
    labels = [checkpoint_label(c["path"]) if c["step"] is None else str(c["step"]) for c in checkpoints]
    step = max(1, len(labels) // 20)
    top.set_xticks(range(0, len(labels), step), labels[::step], rotation=40, ha="right", fontsize=8)
    shown = max(1, len(names) // 40)
    top.set_yticks(range(0, len(names), shown), names[::shown], fontsize=7)
    top.set_title(f"{network}: alpha of every layer over training (grey: skipped, failed or absent)")
    from matplotlib.patches import Patch

    bands = [Patch(color=colour, label=label) for _, _, colour, label in BANDS]
    top.legend(handles=[*bands, Patch(color="#f0f0f0", label="no alpha")], fontsize=8,
               loc="center left", bbox_to_anchor=(1.01, 0.5))
    series = {
        "mean alpha": [c["networks"][network]["summary"]["alpha"] if network in c["networks"] else None
                       for c in checkpoints],
        "mean stable rank / 10": [None if network not in c["networks"] or
                                  (r := c["networks"][network]["summary"]["stable_rank_mean"]) is None
                                  else r / 10 for c in checkpoints],
        "mean log10 spectral norm": [c["networks"][network]["summary"]["log_spectral_norm_mean"]
                                     if network in c["networks"] else None for c in checkpoints],
    }
    for label, values in series.items():
        pts = [(x, v) for x, v in zip(xs, values, strict=True) if v is not None]
        if pts:
            bottom.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", ms=4, label=label)
    bottom.axhline(threshold, color="#d62728", lw=1, ls="--", label=f"alpha {threshold:g}")
    bottom.set_xlabel(xlabel)
    bottom.grid(True, alpha=0.3)
    bottom.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.suptitle(f"{network}: {len(held)} of {len(checkpoints)} checkpoints hold it", fontsize=11)
    fig.savefig(path)
    return Path(path)


def write(document: Document, output_dir: Path, threshold: float = 2.0) -> list[Path]:
    """Per-network figures from the latest checkpoint (last in training order) that holds the
    network; with several checkpoints, also each network's layers over training and the
    alpha-over-training plot."""
    checkpoints = document["checkpoints"]
    written: list[Path] = []
    if not checkpoints:
        return written
    # each network from the latest checkpoint holding it: files of different models given
    # together (actor.pt, critic.pt) each get their figure
    latest: dict[str, CheckpointResult] = {}
    for ckpt in checkpoints:
        for network in ckpt["networks"]:
            latest[network] = ckpt
    for network, ckpt in latest.items():
        subtitle = f"{checkpoint_label(ckpt['path'])}  (step {ckpt['step']})"
        net = ckpt["networks"][network]
        written.append(plot_network(network, net, Path(output_dir) / metrics_filename(network), subtitle))
    if len(checkpoints) > 1:
        for network in latest:
            if sum(network in c["networks"] for c in checkpoints) > 1:
                written.append(plot_layers_over_training(
                    network, checkpoints, Path(output_dir) / layers_filename(network), threshold))
        written.append(plot_trend(document["trend"], Path(output_dir) / TREND_FILENAME, threshold))
    return written
