"""`alphawatch signal` (placeholder until implemented)."""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    pass


def main(args: argparse.Namespace) -> int:
    print("alphawatch: 'signal' is not implemented yet", file=sys.stderr)
    return 1
