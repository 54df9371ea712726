"""The ``cvtrace`` command.

Each subcommand lives with the part of cvtrace it runs (``cvtrace.viewer.cli``,
``cvtrace.demo.cli``) as a function (``register(subparsers)`` unless the table names
another) that adds one subparser and sets ``func`` on it: a function taking the parsed
``argparse.Namespace`` and returning an exit code. Registering imports nothing beyond the
standard library and cvtrace's base dependencies, so ``cvtrace --help`` works in a
production image that installed the library alone; a command whose extra is missing says
how to install it.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
from collections.abc import Sequence
from typing import NamedTuple


class Command(NamedTuple):
    """A subcommand: where it is registered, and the extra it needs."""

    module: str
    extra: str
    needs: tuple[str, ...]
    """Modules the extra installs; missing ones mean the extra is not installed."""
    register: str = "register"
    """The module's function that adds the subcommand."""


COMMANDS = {
    "demo": Command("cvtrace.demo.cli", "demo", ("plotly",)),
    # the trace page as one file: the viewer's app renders it
    "export": Command("cvtrace.viewer.cli", "viewer", ("plotly",), "register_export"),
    # reads trace files without plotly; zstd input asks for the viewer extra itself
    "import": Command("cvtrace.viewer.importing", "viewer", ()),
    "view": Command("cvtrace.viewer.cli", "viewer", ("plotly",)),
}


def missing_extra(name: str) -> str | None:
    """Return how to install what command ``name`` lacks, or ``None`` if nothing."""
    command = COMMANDS[name]
    missing = [module for module in command.needs if importlib.util.find_spec(module) is None]
    if not missing:
        return None
    return (
        f"cvtrace {name} needs the {command.extra!r} extra (missing: {', '.join(missing)}); "
        f"install it with: pip install 'cvtrace[{command.extra}]'"
    )


def build_parser(names: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """Return the parser with the subcommands ``names`` (default: every one)."""
    parser = argparse.ArgumentParser(
        prog="cvtrace",
        description="OpenTelemetry tracing for Flask apps, and a local trace viewer.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in sorted(names or COMMANDS):
        command = COMMANDS[name]
        getattr(importlib.import_module(command.module), command.register)(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``cvtrace`` command line and return its exit code."""
    words = list(sys.argv[1:] if argv is None else argv)
    # `cvtrace NAME ...` registers NAME only: registering the demo imports its app
    # (~0.3 s), which `cvtrace export` and `cvtrace import` have no use for
    parser = build_parser([words[0]] if words and words[0] in COMMANDS else None)
    args = parser.parse_args(words)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help(sys.stderr)
        return 2
    problem = missing_extra(args.command)
    if problem is not None:
        print(problem, file=sys.stderr)
        return 2
    code: int = func(args)
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
