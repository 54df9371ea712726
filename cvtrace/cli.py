"""The ``cvtrace`` command.

Subcommands come from the ``cvtrace.commands`` entry-point group, so that the
library does not import the viewer or the demo (they register ``view`` and
``demo`` themselves; see ``pyproject.toml``). Each entry point names a function
``register(subparsers)`` that adds one subparser and sets ``func`` on it, a
function taking the parsed ``argparse.Namespace`` and returning an exit code.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from importlib.metadata import entry_points

COMMAND_GROUP = "cvtrace.commands"


def build_parser() -> argparse.ArgumentParser:
    """Return the parser with every registered subcommand."""
    parser = argparse.ArgumentParser(
        prog="cvtrace",
        description="OpenTelemetry tracing for Flask apps, and a local trace viewer.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for entry_point in sorted(entry_points(group=COMMAND_GROUP), key=lambda ep: ep.name):
        entry_point.load()(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``cvtrace`` command line and return its exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help(sys.stderr)
        return 2
    code: int = func(args)
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
