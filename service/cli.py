"""The `convlab` command line."""

import argparse
from collections.abc import Sequence

from service import __version__


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with one sub-command per action."""
    parser = argparse.ArgumentParser(prog="convlab", description=__doc__)
    parser.add_argument("--version", action="version", version=f"convlab {__version__}")
    parser.add_subparsers(dest="command", required=True)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `convlab` console script."""
    args = build_parser().parse_args(argv)
    del args
    return 0
