"""The subcommands of ``melodex``: one module each, and the registry that names them.

Every command module exposes ``add_arguments(parser)`` and ``run(args) -> int`` and imports
the library only inside ``run``, so building the parser (``melodex --help``) stays instant.
The seed-compatible scripts ``train.py``, ``inference.py`` and ``preprocess_mfccs.py`` run the
same definitions through :func:`script_main`, and ``melodex demo`` runs its steps through
:func:`run_command`.

Exit status: 0 when everything succeeded, 1 when some input files failed (they are listed),
2 for a usage error or an error that stopped the job (one line on stderr), 130 on Ctrl-C.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from types import ModuleType

from melodex.errors import MelodexError
from melodex.util.logs import setup_logging

# name -> (module, one-line help), in the order of the data's path
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("melodex.commands.demo", "run the whole pipeline on a generated demo corpus (no download)"),
    "make-demo": ("melodex.commands.make_demo", "write the synthetic demo corpus in FMA's layout"),
    "preprocess": ("melodex.commands.preprocess", "precompute a dataset's MFCCs into a resumable cache"),
    "train": ("melodex.commands.train", "train the genre CNN; writes training_outputs/<timestamp>/"),
    "infer": ("melodex.commands.infer", "classify and embed audio files with a trained model"),
    "index": ("melodex.commands.index", "add tracks (audio or an inference JSONL) to a library store"),
    "map": ("melodex.commands.map", "UMAP map of a library: interactive HTML and a static figure"),
    "similar": ("melodex.commands.similar", "tracks that sound like a query track or audio file"),
    "playlist": ("melodex.commands.playlist", "instant mix, a path between two songs, or cluster playlists"),
    "duplicates": ("melodex.commands.duplicates", "groups of tracks that are the same recording (CSV report)"),
    "evaluate": ("melodex.commands.evaluate", "how often a track's nearest neighbours share its artist, album, genre"),
    "evolution": ("melodex.commands.evolution", "how an artist's music, or the collection, moves over time"),
    "serve": ("melodex.commands.serve", "serve a map and its indexed audio on 127.0.0.1"),
}

EXIT_OK, EXIT_FILES_FAILED, EXIT_ERROR, EXIT_INTERRUPTED = 0, 1, 2, 130


class Parser(argparse.ArgumentParser):
    """argparse's parser, but a usage error is one line (``prog: error: why``) and exit 2, not the
    usage block first; ``--help`` still shows everything. Subcommand parsers inherit the class."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(EXIT_ERROR, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def load(name: str) -> ModuleType:
    """The module of command ``name`` (a key of :data:`COMMANDS`)."""
    return importlib.import_module(COMMANDS[name][0])


def add_output_control(parser: argparse.ArgumentParser) -> None:
    """``-q``/``-v``, which every command takes."""
    group = parser.add_argument_group("output control")
    group.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors; no progress bars")
    group.add_argument("-v", "--verbose", action="store_true", help="debug messages")


def configure(parser: argparse.ArgumentParser, module: ModuleType) -> argparse.ArgumentParser:
    """Give ``parser`` the options of a command ``module`` and make it run that command."""
    module.add_arguments(parser)
    add_output_control(parser)
    parser.set_defaults(_run=module.run, _prog=parser.prog)
    return parser


def execute(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    """Run a parsed command: a :class:`MelodexError` becomes one line on stderr and exit 2."""
    setup_logging(getattr(args, "quiet", False), getattr(args, "verbose", False))
    prog = getattr(args, "_prog", parser.prog)  # the command's own name: "melodex infer", "train.py"
    try:
        return int(args._run(args) or 0)
    except MelodexError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def command_parser(command: str, prog: str | None = None) -> argparse.ArgumentParser:
    """The parser of one command on its own (for a root script or another command's steps)."""
    module = load(command)
    parser = Parser(
        prog=prog or f"{command}.py",
        description=(module.__doc__ or COMMANDS[command][1]).strip(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    return configure(parser, module)


def parse(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace | int:
    """``parser.parse_args(argv)``, or the exit status argparse chose (0 after --help, 2 for a
    usage error, already reported on stderr), so callers get a status instead of SystemExit."""
    try:
        return parser.parse_args(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else EXIT_ERROR


def script_main(command: str, argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    """Run one command as a stand-alone script (``python train.py ...``); returns the exit status."""
    parser = command_parser(command, prog)
    args = parse(parser, argv)
    return args if isinstance(args, int) else execute(parser, args)


def run_command(command: str, argv: Sequence[str]) -> int:
    """Run ``melodex COMMAND argv...`` in this process and return its exit status."""
    return script_main(command, list(argv), prog=f"melodex {command}")
