"""`alphawatch signal status|clear`: show or remove a stop-signal file.

    alphawatch signal status --stop-file PATH   # prints the fields; exit 0 present, 1 absent
    alphawatch signal clear  --stop-file PATH   # removes it; exit 0 (also when already absent)

Instead of --stop-file, `--config FILE [--run NAME]` takes the path from the config's
`stop.file` (with `{run}` filled in; every run when --run is not given). With neither,
the config the daemon would read: $ALPHAWATCH_CONFIG, else ./config/alphawatch.yaml
(the shipped default `make run` uses). Exit 2 for a usage or config error, or a file
that is there but is not a readable stop signal.

Clearing is the operator's decision: the daemon never deletes a stop file itself, and
it signals each run at most once -- the ledger remembers that it did. `clear --config`
also forgets that record (in the ledger at `state.path`), re-arming the rule: the
daemon writes a new signal when an analyzed checkpoint meets the rule again (or at its
next start, if the newest checkpoints still do). `clear --stop-file` removes only the
file, so training can continue and the daemon stays quiet for that run.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

# The config `make run` starts the daemon with, relative to the folder it runs in.
SHIPPED_CONFIG = Path("config/alphawatch.yaml")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=("status", "clear"),
                        help="status: show the signal (exit 1 if absent); clear: remove it")
    parser.add_argument("--stop-file", type=Path, metavar="PATH", help="the stop-signal file")
    parser.add_argument("--config", type=Path, metavar="FILE",
                        help="take the path from this config's stop.file instead")
    parser.add_argument("--run", metavar="NAME", help="with --config: only this run")


def _targets(args: argparse.Namespace) -> tuple[list[tuple[str | None, Path]], Path | None]:
    """[(run or None, stop file)] and the ledger path (None with --stop-file)."""
    if args.stop_file is not None:
        return [(None, args.stop_file)], None
    from alphawatch.config import CONFIG_ENV_VAR, load_config

    path = args.config or (Path(os.environ[CONFIG_ENV_VAR]) if os.environ.get(CONFIG_ENV_VAR) else None)
    if path is None and SHIPPED_CONFIG.is_file():
        path = SHIPPED_CONFIG
    if path is None:
        raise ValueError(f"give --stop-file PATH or --config FILE (no ${CONFIG_ENV_VAR} is set and "
                         f"there is no {SHIPPED_CONFIG} here)")
    config = load_config(path)
    runs = [r.name for r in config.runs]
    if args.run is not None:
        if args.run not in runs:
            raise ValueError(f"--run {args.run}: no such run in {path} (runs: {', '.join(runs)})")
        runs = [args.run]
    return [(run, config.stop.path_for(run)) for run in runs], config.state.path


def _rearm(ledger_path: Path, runs: list[str]) -> None:
    if not ledger_path.exists():  # never create a ledger from here
        return
    from alphawatch.service.ledger import Ledger

    with Ledger(ledger_path) as ledger:
        for run in runs:
            if ledger.clear_stop(run):
                print(f"re-armed the stop rule for run {run} (ledger {ledger_path})")


def _status(path: Path) -> int:
    from alphawatch.client import FIELDS
    from alphawatch.service.stop_signal import read_stop_signal

    signal = read_stop_signal(path)
    if signal is None:
        print(f"no stop signal at {path}")
        return 1
    print(f"STOP signal at {path}")
    for key, value in signal.to_json().items():
        if key != "stop" and (value is not None or key in FIELDS):
            print(f"  {key}: {value}")
    if not signal.stop:
        print("  (its 'stop' field is not true: training code ignores it)")
    return 0


def _clear(path: Path) -> int:
    from alphawatch.service.stop_signal import remove_stop_signal

    print(f"removed stop signal {path}" if remove_stop_signal(path) else f"no stop signal at {path}")
    return 0


def main(args: argparse.Namespace) -> int:
    from alphawatch.errors import ConfigError
    from alphawatch.service.ledger import LedgerError

    try:
        targets, ledger_path = _targets(args)
        codes = [(_status if args.action == "status" else _clear)(path) for _, path in targets]
        if args.action == "clear" and ledger_path is not None:
            _rearm(ledger_path, [run for run, _ in targets if run is not None])
    except BrokenPipeError:  # `| head`: the reader has gone; alphawatch.cli ends quietly
        raise
    except (ValueError, ConfigError, OSError, LedgerError) as exc:
        print(f"alphawatch signal: {exc}", file=sys.stderr)
        return 2
    if args.action == "status":
        return 0 if any(code == 0 for code in codes) else 1
    return 0
