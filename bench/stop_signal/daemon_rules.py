"""Do the daemon's stop rules fire where the study's candidates did?

The study scores its candidate rules (`rules.py`); the daemon runs its own implementation
(`alphawatch.service.stop_rule`, chosen by `stop.rule`). This replays each run's analyzed
checkpoints through the daemon's code exactly as the daemon calls it -- after every
checkpoint, on the newest window of distinct checkpoints (copies of the same weights at the
same step count once, as in the ledger) -- and compares the first fire step with the
study's, so the rule that ships is the rule that was measured.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from alphawatch.config import StopConfig
from alphawatch.results import fingerprint
from alphawatch.service import stop_rule

from bench.stop_signal.evaluate import Outcome, Run

# daemon rule (stop.rule) -> the study candidate it implements
SHIPPED = {"share_below": "share-below-model-p2", "guide": "guide", "trusted_min": "trusted-min-model-p2"}


def distinct(results: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Results without copies (the same measured weights at the same step), in the given order."""
    seen: set[tuple[Any, str | None]] = set()
    kept = []
    for result in results:
        key = (result["step"], fingerprint(result))  # type: ignore[arg-type]
        if key not in seen:
            seen.add(key)
            kept.append(result)
    return kept


def daemon_fire_step(results: Sequence[dict[str, Any]], config: StopConfig) -> int | None:
    """The step of the checkpoint after which the daemon would write the stop file, or None."""
    checkpoints = distinct(results)
    for i in range(len(checkpoints)):
        prefix = checkpoints[: i + 1]
        if stop_rule.fires(prefix[-stop_rule.window(config):], len(prefix), config):  # type: ignore[arg-type]
            return int(checkpoints[i]["step"])
    return None


def agreement_section(runs: Sequence[Run], outcomes: Sequence[Outcome]) -> list[str]:
    """Report lines: per shipped rule, on how many runs the daemon fires where the study did."""
    out = ["## The daemon's rules reproduce the study", "",
           "Each run's checkpoints replayed through `alphawatch.service.stop_rule` as the daemon calls it "
           "(`bench/stop_signal/daemon_rules.py`); first fire step compared with the study candidate's.", "",
           "| `stop.rule` | study candidate | runs where the fire step agrees |", "|---|---|---|"]
    for name, candidate in SHIPPED.items():
        config = StopConfig(rule=name)
        expected = {o.run: o.fire_step for o in outcomes if o.rule == candidate}
        agree = [r.spec.name for r in runs
                 if r.spec.name in expected and daemon_fire_step(r.results, config) == expected[r.spec.name]]
        differ = sorted(set(expected) - set(agree))
        out.append(f"| `{name}` | `{candidate}` | {len(agree)}/{len(expected)}"
                   + (f" (differs: {', '.join(differ)})" if differ else "") + " |")
    return out + [""]
