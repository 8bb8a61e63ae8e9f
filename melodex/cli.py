"""The ``melodex`` command: a parser with one subcommand per job (see :mod:`melodex.commands`).

Tests and notebooks call :func:`main` with a list of arguments, as ``melodex`` would be called
from the shell; it returns the exit status instead of exiting.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from melodex import __version__
from melodex.commands import (  # noqa: F401  (run_command, script_main: the root scripts' entry points)
    COMMANDS,
    EXIT_ERROR,
    Parser,
    command_parser,
    configure,
    execute,
    load,
    parse,
    run_command,
    script_main,
)


def get_parser() -> argparse.ArgumentParser:
    """The full ``melodex`` parser with every subcommand."""
    parser = Parser(
        prog="melodex",
        description="Melodex: learned embeddings for studying a music collection "
        "(genre CNN on MFCCs, UMAP maps, similarity, artist evolution).",
        epilog="Run 'melodex COMMAND --help' for a command's options. "
        "Start with 'melodex demo' to see everything work on a generated corpus.",
    )
    parser.add_argument("--version", action="version", version=f"melodex {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_text) in COMMANDS.items():
        module = load(name)
        # the whole docstring: 'melodex infer --help' says as much as 'python inference.py --help'
        p = sub.add_parser(name, help=help_text, description=(module.__doc__ or help_text).strip(),
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        configure(p, module)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``melodex`` console script; returns the exit status."""
    parser = get_parser()
    args = parse(parser, argv)
    if isinstance(args, int):
        return args
    if not getattr(args, "command", None):
        parser.print_help()
        return EXIT_ERROR
    return execute(parser, args)
