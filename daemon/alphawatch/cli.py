"""Command-line entry point: `alphawatch run | analyze | signal | check-config`.

Each subcommand lives in its own module under `alphawatch.commands` and exposes
`add_arguments(parser)` and `main(args) -> int`. Those modules import heavy
libraries only inside `main`, so `alphawatch --help` stays instant.

Exit codes: 0 success, 2 usage or configuration error, 3 one or more
checkpoints refused or failed (analyze), 1 unexpected internal error.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from alphawatch import __version__
from alphawatch.commands import analyze, check_config, run, signal

COMMANDS = {
    "run": (run, "watch checkpoint folders and serve metrics until stopped"),
    "analyze": (analyze, "analyze checkpoints once and write reports"),
    "signal": (signal, "show or clear a stop-signal file"),
    "check-config": (check_config, "validate a configuration file"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="alphawatch",
        description="Judge training checkpoints' health without test data.",
    )
    parser.add_argument("--version", action="version", version=f"alphawatch {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module, help_text) in COMMANDS.items():
        sub_parser = sub.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(sub_parser)
        sub_parser.set_defaults(handler=module.main)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    except Exception as exc:  # last resort: one line, never a traceback
        print(f"alphawatch: internal error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
