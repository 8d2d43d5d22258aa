"""`alphawatch run`: watch checkpoint folders, analyze, serve metrics, write the stop signal.

Flags override the configuration file (which overrides the defaults and the
ALPHAWATCH_* environment). A configuration error is one line on stderr, exit 2; once the
configuration is read, everything (a start-up failure too) is a log line in its format.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

# flag destination -> dotted config key
_OVERRIDES = {
    "watch": "runs.watch",
    "run": "runs.name",
    "state": "state.path",
    "metrics_host": "metrics.host",
    "metrics_port": "metrics.port",
    "stop_file": "stop.file",
    "stop_threshold": "stop.threshold",
    "observer": "watch.observer",
    "log_format": "logging.format",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, metavar="FILE", help="YAML configuration (default: built-ins)")
    parser.add_argument("--watch", metavar="DIR", help="checkpoint folder to watch (a single run)")
    parser.add_argument("--run", metavar="NAME", help="run name for --watch (default: the folder name)")
    parser.add_argument("--state", metavar="PATH", help="ledger file (SQLite)")
    parser.add_argument("--metrics-host", metavar="HOST", help="address the metrics server binds")
    parser.add_argument("--metrics-port", type=int, metavar="PORT", help="metrics port (0: any free port)")
    parser.add_argument("--stop-file", metavar="PATH", help="stop-signal file ({run} is replaced)")
    parser.add_argument("--stop-threshold", type=float, metavar="X", help="stop when alpha falls below X")
    parser.add_argument("--observer", choices=("auto", "inotify", "polling"), help="file-event source")
    parser.add_argument("--log-format", choices=("auto", "json", "console"), help="log line format")


def overrides_from(args: argparse.Namespace) -> dict[str, object]:
    """Dotted-key overrides for the flags that were given."""
    given = {dest: getattr(args, dest, None) for dest in _OVERRIDES}
    return {_OVERRIDES[dest]: value for dest, value in given.items() if value is not None}


def main(args: argparse.Namespace) -> int:
    from alphawatch.config import load_config
    from alphawatch.errors import ConfigError

    try:
        config = load_config(args.config, overrides_from(args))
    except ConfigError as exc:  # before the log format is known: one plain line
        print(f"alphawatch: {exc}", file=sys.stderr)
        return 2
    from alphawatch.service.daemon import run_daemon

    return run_daemon(config)  # start-up failures are log lines from here on
