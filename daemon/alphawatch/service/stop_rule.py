"""The stop rule: should training stop, given the analyzed checkpoints of one run? (pure)

    signal = evaluate(recent, analyzed, rule, run, history)   # a Signal to write, or None

`recent` are the run's newest *distinct* analyzed checkpoints in training order (the ledger
gives them: `alphawatch.ordering` for the order, copies of one checkpoint dropped by their
`results.fingerprint`), at least `window(rule)` of them when there are that many;
`analyzed` is how many distinct checkpoints the run has in all. Splitting it this way keeps
the cost of one evaluation independent of the run's length: the daemon re-evaluates after
every checkpoint, and a long run has tens of thousands.

The rule (`StopConfig`) fires when

- at least `rule.min_checkpoints` checkpoints have been analyzed, and
- for ANY selected network (`rule.networks`; empty = every network in `recent`), the last
  `rule.patience` checkpoints all have an alpha for it strictly below `rule.threshold`. A
  checkpoint where that network has no alpha (missing, or every fit failed) breaks the
  streak: unknown is not "below".

When several networks fire at once, the one with the lowest current alpha is reported (then
the name, for determinism). `recommended_checkpoint` is `alphawatch.analysis.trend.recommend`
on the triggering network's alphas alone, over the whole history in the same order: the
same rule `alphawatch analyze` prints, not confused by networks the rule does not select.
Pure: no I/O; the clock is a parameter.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from alphawatch import __version__
from alphawatch.analysis.trend import recommend
from alphawatch.client import Signal
from alphawatch.config import StopConfig
from alphawatch.results import CheckpointResult, network_alpha, network_names

SIGNAL_FORMAT_VERSION = 1


def window(rule: StopConfig) -> int:
    """How many of the newest distinct checkpoints `fires` needs to see."""
    return rule.patience


def fires(recent: Sequence[CheckpointResult], analyzed: int, rule: StopConfig) -> tuple[str, float] | None:
    """(network, its alpha at the newest checkpoint) when the rule fires, else None."""
    if not rule.enabled or analyzed < rule.min_checkpoints or len(recent) < rule.patience:
        return None
    streak = list(recent)[-rule.patience:]
    firing: list[tuple[float, str]] = []
    for network in list(rule.networks) or network_names(list(recent)):
        below = [a for r in streak if (a := network_alpha(r, network)) is not None and a < rule.threshold]
        if len(below) == len(streak):
            firing.append((below[-1], network))
    if not firing:
        return None
    value, network = min(firing)
    return network, value


def recommended(history: Sequence[CheckpointResult], network: str, threshold: float) -> str | None:
    """The checkpoint to go back to, judged on `network` alone, `history` in training order."""
    return recommend([r["path"] for r in history], [network_alpha(r, network) for r in history], threshold)


def stop_signal(newest: CheckpointResult, network: str, value: float, rule: StopConfig, run: str,
                analyzed: int, recommended_checkpoint: str | None, now: datetime | None = None) -> Signal:
    """The signal to write for a rule that fired on `newest`."""
    streak = (f"for {rule.patience} consecutive checkpoints" if rule.patience > 1
              else "at the newest checkpoint")
    step = newest["step"]
    created = (now or datetime.now(UTC)).astimezone(UTC)
    return Signal(
        stop=True,
        reason=(f"alpha of {network} is {value:.3f}, below the threshold {rule.threshold:g} {streak}"
                f"{f' (step {step})' if step is not None else ''}: the network is over-fitting"),
        run=run,
        network=network,
        metric="alpha",
        value=value,
        threshold=rule.threshold,
        checkpoint=newest["path"],
        step=step,
        recommended_checkpoint=recommended_checkpoint,
        created_at=created.strftime("%Y-%m-%dT%H:%M:%SZ"),
        version=SIGNAL_FORMAT_VERSION,
        extra={"alphawatch_version": __version__, "patience": rule.patience,
               "checkpoints_analyzed": analyzed},
    )


def evaluate(recent: Sequence[CheckpointResult], analyzed: int, rule: StopConfig, run: str,
             history: Callable[[], Sequence[CheckpointResult]], now: datetime | None = None) -> Signal | None:
    """The signal to write when the rule fires on the newest of `recent`, else None.

    `history()` (every distinct analyzed checkpoint, in training order) is called only when
    the rule fires, for the recommendation: once per run, not once per checkpoint.
    """
    hit = fires(recent, analyzed, rule)
    if hit is None:
        return None
    network, value = hit
    return stop_signal(recent[-1], network, value, rule, run, analyzed,
                       recommended(history(), network, rule.threshold), now)
