"""Where Melodex's log messages go when a command runs: stderr, one line each."""

from __future__ import annotations

import logging
import sys


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
    """Send the ``melodex`` loggers to stderr: warnings only (``quiet``), info, or debug (``verbose``)."""
    level = logging.WARNING if quiet else logging.DEBUG if verbose else logging.INFO
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter("%(message)s" if not verbose else "%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("melodex")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
