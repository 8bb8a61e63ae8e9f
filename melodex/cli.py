"""The ``melodex`` command: one subcommand per job, each defined once in its own module.

Every command module exposes ``add_arguments(parser)`` and ``run(args) -> int`` and keeps heavy
imports (torch, numpy, pandas) inside ``run``, so ``melodex --help`` answers at once. The
seed-compatible scripts ``train.py`` and ``inference.py`` call :func:`script_main` with the same
definitions.

Exit status: 0 when everything succeeded, 1 when some input files failed (they are listed),
2 for a usage error or an error that stopped the job (one line on stderr), 130 on Ctrl-C.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

# name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("melodex.commands.demo", "run the whole pipeline on a generated demo corpus (no download)"),
    "make-demo": ("melodex.commands.make_demo", "write the synthetic demo corpus in FMA's layout"),
    "preprocess": ("melodex.commands.preprocess", "precompute a dataset's MFCCs into a resumable cache"),
    "train": ("melodex.commands.train", "train the genre CNN; writes training_outputs/<timestamp>/"),
    "infer": ("melodex.commands.infer", "classify and embed audio files with a trained model"),
    "index": ("melodex.commands.index", "add tracks (audio or an inference JSONL) to a library store"),
    "map": ("melodex.commands.map", "UMAP map of a library: interactive HTML and a static figure"),
    "similar": ("melodex.commands.similar", "tracks that sound like a query track or audio file"),
    "evolution": ("melodex.commands.evolution", "how an artist's music, or the collection, moves over time"),
    "serve": ("melodex.commands.serve", "serve a map and its indexed audio on 127.0.0.1"),
}

EXIT_OK, EXIT_FILES_FAILED, EXIT_ERROR, EXIT_INTERRUPTED = 0, 1, 2, 130

log = logging.getLogger("melodex")


def _load(name: str):
    return importlib.import_module(COMMANDS[name][0])


def _add_common(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("output control")
    group.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors; no progress bars")
    group.add_argument("-v", "--verbose", action="store_true", help="debug messages")


def get_parser() -> argparse.ArgumentParser:
    """The full ``melodex`` parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="melodex",
        description="Melodex: learned embeddings for studying a music collection "
        "(genre CNN on MFCCs, UMAP maps, similarity, artist evolution).",
        epilog="Run 'melodex COMMAND --help' for a command's options. "
        "Start with 'melodex demo' to see everything work on a generated corpus.",
    )
    from melodex import __version__

    parser.add_argument("--version", action="version", version=f"melodex {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        try:
            module = _load(name)
        except ModuleNotFoundError as exc:  # a command whose module is not built yet
            if not exc.name or not module_name.startswith(exc.name):
                raise
            continue
        p = sub.add_parser(name, help=help_text, description=(module.__doc__ or help_text).strip().split("\n\n")[0],
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(p)
        _add_common(p)
        p.set_defaults(_run=module.run)
    return parser


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is when a record comes (notebooks, pytest and
    ``contextlib.redirect_stderr`` swap it), never to a stream closed since set-up."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass


def setup_logging(quiet: bool = False, verbose: bool = False) -> None:
    level = logging.WARNING if quiet else logging.DEBUG if verbose else logging.INFO
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter("%(message)s" if not verbose else "%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("melodex")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


def _execute(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    from melodex.errors import MelodexError

    setup_logging(getattr(args, "quiet", False), getattr(args, "verbose", False))
    try:
        return int(args._run(args) or 0)
    except MelodexError as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print(f"{parser.prog}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``melodex`` console script; returns the exit status."""
    parser = get_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return EXIT_ERROR
    return _execute(parser, args)


def command_parser(command: str, prog: str | None = None) -> argparse.ArgumentParser:
    """The parser of one command on its own (for a root script or another command's steps)."""
    module = _load(command)
    parser = argparse.ArgumentParser(
        prog=prog or f"{command}.py",
        description=(module.__doc__ or COMMANDS[command][1]).strip(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    module.add_arguments(parser)
    _add_common(parser)
    parser.set_defaults(_run=module.run)
    return parser


def script_main(command: str, argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    """Run one command as a stand-alone script (``python train.py ...``)."""
    parser = command_parser(command, prog)
    return _execute(parser, parser.parse_args(argv))


def run_command(command: str, argv: Sequence[str]) -> int:
    """Run ``melodex COMMAND argv...`` in this process and return its exit status."""
    return script_main(command, list(argv), prog=f"melodex {command}")
