"""`alphawatch check-config FILE`: validate a configuration without starting anything.

Exit 0 and one line "OK: FILE: <summary>" when the file (plus any ALPHAWATCH_*
environment overrides, as `alphawatch run` would see them) is valid; exit 2 and
one error line naming the key path and what is allowed otherwise. Meant for CI
and for deployment scripts, so the output is a single line either way.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", type=Path, metavar="FILE", help="the YAML configuration to validate")
    parser.add_argument(
        "--no-env", action="store_true",
        help="ignore ALPHAWATCH_* environment variables (validate the file alone)",
    )


def main(args: argparse.Namespace) -> int:
    from alphawatch.config import load_config, summary
    from alphawatch.errors import ConfigError

    try:
        config = load_config(args.file, env={} if args.no_env else None)
    except ConfigError as exc:
        print(f"alphawatch: config error: {exc}", file=sys.stderr)
        return 2
    print(f"OK: {args.file}: {summary(config)}")
    return 0
