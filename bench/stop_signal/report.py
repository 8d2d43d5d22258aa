"""The study's markdown report, CSV of every run x rule, summary JSON and per-run plots.

Everything in the report is computed here from the cached runs; nothing is typed in by
hand, so a rerun on another machine regenerates it whole.
"""

from __future__ import annotations

import json
import platform
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench.stop_signal import trust
from bench.stop_signal.candidates import GUIDE, KEY_RULES, SUMMARY_RULES, candidates, describe
from bench.stop_signal.daemon_rules import agreement_section
from bench.stop_signal.evaluate import (
    Outcome,
    Run,
    choose,
    dump_outcomes,
    leave_one_group_out,
    load_run,
    score,
    summarize,
)
from bench.stop_signal.plan import EXAMPLES, RunSpec, dev_seeds
from bench.stop_signal.rules import TrustedLayers, network_role, networks_seen
from bench.stop_signal.truth import ACC_DROP, COLLAPSE, RISE, TAIL, TOLERANCE

SUMMARY_HEADER = (
    "rule", "false stops, healthy runs", "healthy runs stopped after gt", "false stops, all runs",
    "detected (should stop)", "missed",
    "mean regret, supervised (held-out loss)", "mean regret, RL (share of return range)",
    "median lag on detections (checkpoints)",
)
DEFINITIONS = (
    "Definitions: *false stop* = fired before the ground-truth step; *detected* = a run that should "
    "stop (over-fits/collapses) where the rule fired at or after it; *missed* = such a run where it "
    "never fired; *regret* = how much worse the run is where training stops (the fire step, or the "
    "end of the run when the rule never fires) than at its best: relative held-out loss, or the "
    "share of the RL return range (best − worst) lost; *lag* = checkpoints from the ground truth "
    "to the fire point."
)
PROCEDURE = (
    "Procedure (fixed before looking at the held-out seed): on the development seeds, keep the "
    "rules with no false stop on a healthy run; among them the most detections, then the fewest "
    "false stops on any run, then the least regret; ties go to the simpler rule (candidate order)."
)
CELL_LEGEND = (
    "Cell: fire step (lag in checkpoints). ✗ false stop, ✓ detection, ok = fired after the ground "
    "truth on a healthy run, · never fired, ○ never fired on a run that should stop. Every metric "
    "per cell: `outcomes.csv`."
)


def _f(value: float | None, fmt: str = ".3g") -> str:
    return "–" if value is None else format(value, fmt)


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}%"


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return lines + [""]


def _summary_rows(rules: Sequence[str], outcomes: Sequence[Outcome]) -> list[list[str]]:
    rows = []
    for rule in rules:
        s = summarize(rule, outcomes)
        rows.append([f"`{rule}`", f"{s.healthy_false_stops}/{s.healthy}",
                     f"{s.healthy_later_stops}/{s.healthy}", f"{s.false_stops}/{s.runs}",
                     f"{s.detected}/{s.should_stop}", str(s.missed), _pct(s.regret_supervised),
                     _pct(s.regret_rl), _f(s.median_lag, "g")])
    return rows


def _cell(o: Outcome) -> str:
    if o.fire_step is None:
        return "○ miss" if o.missed else "·"
    flag = "✗" if o.false_stop else ("✓" if o.detected else "ok")
    lag = f"{o.lag_checkpoints:+d}" if o.lag_checkpoints is not None else "?"
    return f"{flag} {o.fire_step} ({lag})"


def _timing_section(runs: Sequence[Run], timings: Sequence[dict[str, Any]], wall_s: float,
                    load: tuple[Any, Any]) -> list[str]:
    train_cpu = sum(t.get("train_cpu_s", 0.0) for t in timings)
    ana_cpu = sum(t.get("analyze_cpu_s", 0.0) for t in timings)
    n_ex = sum(r.spec.family in EXAMPLES for r in runs)
    out = ["## Runs and timing", "",
           f"{len(runs)} runs ({len(runs) - n_ex} study runs, {n_ex} shipped examples), "
           f"{sum(len(r.results) for r in runs)} checkpoints; Python {platform.python_version()}.",
           f"This invocation trained {sum(bool(t.get('trained')) for t in timings)} of {len(timings)} runs "
           f"(the rest came from the cache): {wall_s:.0f} s wall, load average {load[0][0]:.1f} before and "
           f"{load[1][0]:.1f} after. CPU time summed over runs, recorded when each run was trained "
           f"and analyzed: training {train_cpu:.0f} s, analysis {ana_cpu:.0f} s. Two jobs on two idle "
           f"cores take about half the CPU total, ~{(train_cpu + ana_cpu) / 120:.0f} min from an empty "
           "cache (CPU time taken on a contended machine over-states it).", ""]
    rows = [[t["run"], f"{t.get('train_wall_s', 0):.0f}", f"{t.get('train_cpu_s', 0):.0f}",
             f"{(t.get('loadavg') or [0])[0]:.1f}", f"{t.get('analyze_cpu_s', 0):.1f}"]
            for t in sorted(timings, key=lambda t: t["run"])]
    return out + _table(("run", "train wall s", "train CPU s", "load average after training",
                         "analysis CPU s"), rows)


def _truth_section(runs: Sequence[Run]) -> list[str]:
    out = ["## Ground truth", "",
           f"Supervised: `gt` = step of the best held-out loss; a classifier **over-fits** when by its "
           f"end the held-out loss is ≥ {RISE:.0%} above its best *and* held-out accuracy ≥ "
           f"{ACC_DROP * 100:.0f} points below its best, else it is **healthy** (loss creeping up while "
           f"accuracy holds is over-confidence); the char-level LM is judged on held-out loss alone "
           f"(≥ {RISE:.0%} above its best). RL: plateau = median "
           f"eval return of the last {TAIL} checkpoints; `gt` = first step within {TOLERANCE:.0%} of "
           f"the learning range (plateau − first return) below the plateau; **collapse** = a later "
           f"return more than {COLLAPSE:.0%} of the range below the plateau on two checkpoints in a row. "
           "best/end: held-out loss (supervised) or eval return (RL).", ""]
    rows = []
    for run in runs:
        t = run.truth
        acc = f"{max(t.accuracy):.3f} → {t.accuracy[-1]:.3f}" if t.accuracy else "–"
        rows.append([run.spec.name, t.label, _f(t.gt_step, "d"), f"{t.best:.4g}", f"{t.metric[-1]:.4g}", acc,
                     _f(t.collapse_step, "d"), str(len(t.steps)), f"{t.steps[-1]}"])
    return out + _table(("run", "label", "gt step", "best", "end", "held-out acc best → end", "collapse",
                         "checkpoints", "last step"), rows)


def _range(by: str, lo: float, hi: float) -> str:
    if by == "D":
        return f"≥ {lo:.3g}" if hi >= 5 else f"{lo:.3g}–{hi:.3g}"
    return f"≥ {lo:g}" if hi >= 10**8 else f"{lo:g}–{hi - 1:g}"


def _agree(stats: dict[str, float] | None) -> list[str]:
    if not stats:
        return ["0", "–", "–", "–", "–"]
    return [str(stats["n"]), f"{stats['median']:.3f}", f"{stats['p95']:.3f}", _pct(stats["agree"]),
            f"{stats['max']:.2f}"]


def _trust_section(pairs: list[trust.Pair], chosen: TrustedLayers, runs: Sequence[Run]) -> list[str]:
    dev = [p for p in pairs if set(p.seeds) <= set(dev_seeds())]
    held = [p for p in pairs if not set(p.seeds) <= set(dev_seeds())]
    out = ["## Which layers' fits are trustworthy", "",
           trust.__doc__.split("\n\n", 1)[1].strip(), "",
           f"Development seeds {', '.join(map(str, dev_seeds()))}, every study run; |Δα| of each pair, "
           f"binned by the worse reading of the pair:", ""]
    rows = [[kind, r["by"], _range(r["by"], *r["range"]), *_agree(r)]
            for kind in trust.KINDS for r in trust.binned(dev, kind)]
    out += _table(("pairs", "binned by", "range", "n", "median |Δα|", "95th pct", f"within {trust.AGREE}",
                   "max"), rows)
    rows = []
    for r in trust.grid(dev):
        cells = []
        for kind in trust.KINDS:
            stats = r[kind]
            cells += [_pct(r[f"{kind}_coverage"]), _pct(stats["agree"]) if stats else "–"]
        rows.append([r["min_spikes"], f"{r['max_d']:g}" if r["max_d"] < 5 else "any", *cells,
                     "yes" if trust.passes(r) else ""])
    out += _table(("min tail", "max D", "consecutive kept", f"consecutive within {trust.AGREE}", "seeds kept",
                   f"seeds within {trust.AGREE}", "passes"), rows)
    out += [f"Chosen: **num_pl_spikes ≥ {chosen.min_spikes} and D ≤ {chosen.max_d:g}** (the loosest grid "
            f"point where at least {trust.SHARE:.0%} of trusted pairs of each kind agree within "
            f"{trust.AGREE}).",
            "", "Held-out check (pairs involving the held-out seed, not used to choose):", ""]
    rows = []
    for kind in trust.KINDS:
        mine = [p for p in held if p.kind == kind]
        kept = [p for p in mine if p.trusted(chosen)]
        dropped = [p for p in mine if not p.trusted(chosen)]
        rows.append([kind, "trusted", *_agree(trust.agreement(kept))])
        rows.append([kind, "not trusted", *_agree(trust.agreement(dropped))])
    out += _table(("pairs", "readings", "n", "median |Δα|", "95th pct", f"within {trust.AGREE}", "max"), rows)
    out += ["Trusted layers per network at the last checkpoint (the proposed `alphawatch_layers_trusted`), "
            "of the layers fitted:", ""]
    rows = []
    for run in runs:
        last = run.results[-1]
        cells = [f"{name}: {chosen.count(last['networks'][name])}/"
                 f"{last['networks'][name]['summary'].get('layers_analyzed')}"
                 for name in networks_seen([last], None)]
        rows.append([run.spec.name, ", ".join(cells)])
    return out + _table(("run", "trusted / fitted layers"), rows)


def _rule_sections(names: list[str], outcomes: list[Outcome], sets: dict[str, set[str]]) -> list[str]:
    out = ["## Candidate rules: summary", "", DEFINITIONS, "",
           f"### All {len(sets['study'])} study runs (examples excluded)", ""]
    study = [o for o in outcomes if o.run in sets["study"]]
    out += _table(SUMMARY_HEADER, _summary_rows(names, study))
    never: dict[str, list[float]] = {"supervised": [], "rl": []}
    for o in study:
        if o.rule == names[0]:
            never[o.kind].append(o.regret_end)
    out += [f"No rule at all (train to the end): mean regret supervised {_pct(_mean(never['supervised']))}, "
            f"RL {_pct(_mean(never['rl']))}.", "",
            f"### Development seeds {', '.join(map(str, dev_seeds()))} (used to choose)", ""]
    out += _table(SUMMARY_HEADER, _summary_rows(names, [o for o in outcomes if o.run in sets["dev"]]))
    out += ["### Held-out seed (not used to choose anything)", ""]
    out += _table(SUMMARY_HEADER, _summary_rows(names, [o for o in outcomes if o.run in sets["held"]]))
    if sets["examples"]:
        out += ["### Shipped examples (not used to choose anything)", ""]
        examples = [o for o in outcomes if o.run in sets["examples"]]
        out += _table(SUMMARY_HEADER, _summary_rows(names, examples))
    return out


def _headline(names: list[str], chosen: str, trusted: TrustedLayers, outcomes: list[Outcome],
              sets: dict[str, set[str]]) -> list[str]:
    """The few rules that tell the story, on every study run, plus where they stop the examples."""
    study = [o for o in outcomes if o.run in sets["study"]]
    examples = sorted(sets["examples"])
    out = ["## Summary", "",
           f"Picked by the fixed procedure below: **`{chosen}`**. Trusted layer: status ok, "
           f"`num_pl_spikes` ≥ {trusted.min_spikes}, `D` ≤ {trusted.max_d:g}. All "
           f"{len(sets['study'])} study runs (examples never used to choose); each example column gives "
           "the step the rule fires at (– never) and the ground-truth step.", ""]
    rows = []
    for rule in [r for r in dict.fromkeys([*SUMMARY_RULES, chosen]) if r in names]:
        s = summarize(rule, study)
        cells = []
        for run in examples:
            o = next(o for o in outcomes if o.run == run and o.rule == rule)
            cells.append(f"{_f(o.fire_step, 'd')} (gt {o.gt_step})")
        rows.append([f"`{rule}`", f"{s.healthy_false_stops}/{s.healthy}", f"{s.detected}/{s.should_stop}",
                     _pct(s.regret_supervised), _pct(s.regret_rl), _f(s.median_lag, "g"), *cells])
    return out + _table(("rule", "false stops, healthy", "detected", "regret, supervised", "regret, RL",
                         "median lag (ckpts)", *examples), rows)


def _choice_section(chosen: str, logo: list[dict[str, Any]], outcomes: list[Outcome]) -> list[str]:
    out = ["## The rule the data picks", "", PROCEDURE, "",
           f"Chosen on the development seeds: **`{chosen}`**.", "",
           "Leave one family out: the rule the same procedure picks without that family, scored on it.", ""]
    rows = []
    for r in logo:
        s = r["summary"]
        rows.append([r["group"], f"`{r['chosen']}`", f"{s.healthy_false_stops}/{s.healthy}",
                     f"{s.false_stops}/{s.runs}", f"{s.detected}/{s.should_stop}"])
    out += _table(("left-out family", "rule picked without it", "its false stops there, healthy",
                   "false stops there, all", "detected there"), rows)
    for rule in dict.fromkeys([chosen, GUIDE]):
        out += [f"### `{rule}` per run", ""]
        rows = [[o.run, o.label, _f(o.gt_step, "d"), _f(o.fire_step, "d"), o.network or "–",
                 _f(o.lag_steps, "+d"), _pct(o.regret), _pct(o.regret_end), "yes" if o.false_stop else "",
                 "yes" if o.detected else "", "yes" if o.missed else ""]
                for o in outcomes if o.rule == rule]
        out += _table(("run", "label", "gt step", "fires at", "network", "lag (steps)", "regret",
                       "regret, no stop", "false stop", "detected", "missed"), rows)
    return out


def write_report(specs: Sequence[RunSpec], timings: Sequence[dict[str, Any]], cache: Path, out: Path, *,
                 smoke: bool, wall_s: float, load: tuple[Any, Any]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    runs = [load_run(spec, cache) for spec in specs]
    study = [r for r in runs if r.spec.family not in EXAMPLES]
    sets = {"study": {r.spec.name for r in study},
            "dev": {r.spec.name for r in study if r.spec.seed in dev_seeds()},
            "held": {r.spec.name for r in study if r.spec.seed not in dev_seeds()},
            "examples": {r.spec.name for r in runs if r.spec.family in EXAMPLES}}
    pairs = trust.all_pairs(study)
    trusted = trust.choose_thresholds([p for p in pairs if set(p.seeds) <= set(dev_seeds())])
    rules = candidates(trusted)
    names = list(rules)
    outcomes = [score(run, name, rule) for run in runs for name, rule in rules.items()]
    dev_out = [o for o in outcomes if o.run in sets["dev"]]
    chosen = choose(names, dev_out)
    logo = leave_one_group_out(names, [o for o in outcomes if o.run in sets["study"]])

    from bench.stop_signal.plots import plot_run

    plot_rules = list(dict.fromkeys([*KEY_RULES, chosen]))
    for run in runs:
        mine = {o.rule: o for o in outcomes if o.run == run.spec.name}
        plot_run(run, mine, trusted, out / f"{run.spec.name}.png", plot_rules)
    dump_outcomes(outcomes, out / "outcomes.csv")

    lines = ["# How good is the stop signal? — study report", "",
             "Generated by `python -m bench.stop_signal` (`make signal-study`) from real training runs. "
             "Every "
             "checkpoint is analyzed with `alphawatch.checkpoints.load` + "
             "`alphawatch.analysis.analyze_checkpoint` (default `AnalysisOptions`), as the daemon does; "
             "every number below is computed by `bench/stop_signal/report.py` from the cache."
             + (" **SMOKE PLAN: not evidence.**" if smoke else ""), ""]
    lines += _headline(names, chosen, trusted, outcomes, sets)
    lines += _timing_section(runs, timings, wall_s, load)
    lines += _truth_section(runs)
    lines += _trust_section(pairs, trusted, study)
    lines += _rule_sections(names, outcomes, sets)
    lines += _choice_section(chosen, logo, outcomes)
    lines += agreement_section(runs, outcomes)
    lines += ["## Every run × rule", "", CELL_LEGEND, ""]
    for start in range(0, len(names), 6):
        chunk = names[start : start + 6]
        rows = [[run.spec.name, run.truth.label,
                 *[_cell(next(o for o in outcomes if o.run == run.spec.name and o.rule == r)) for r in chunk]]
                for run in runs]
        lines += _table(("run", "label", *[f"`{r}`" for r in chunk]), rows)
    seen = sorted({n for r in runs for n in networks_seen(r.results, None)})
    lines += ["## Rules (exact definitions)", "",
              f"Trusted layer: status ok, `num_pl_spikes` ≥ {trusted.min_spikes}, `D` ≤ {trusted.max_d:g}. "
              "Roles from network names (`bench/stop_signal/rules.py: network_role`): "
              + ", ".join(f"`{n}` → {network_role(n)}" for n in seen) + ".", ""]
    lines += [f"- `{name}`: {describe(rule)}" for name, rule in rules.items()] + [""]
    lines += ["## Plots", ""] + [f"- [{run.spec.name}]({run.spec.name}.png)" for run in runs] + [""]
    (out / "report.md").write_text("\n".join(lines))

    study_out = [o for o in outcomes if o.run in sets["study"]]
    (out / "summary.json").write_text(json.dumps({
        "chosen": chosen, "trusted": asdict(trusted),
        "summaries_study": {n: asdict(summarize(n, study_out)) for n in names},
        "summaries_dev": {n: asdict(summarize(n, dev_out)) for n in names},
        "leave_one_group_out": [{"group": r["group"], "chosen": r["chosen"]} for r in logo],
    }, indent=1, sort_keys=True))
