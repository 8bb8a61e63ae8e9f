"""The base class of the result writers: where results go, and every error on the way.

:class:`ResultWriter` owns the input/output of every format: opening the destination (a file,
stdout, a failures sidecar, or spooled sections for a document written at the end), flushing
after each result, closing, and turning each OSError into one ``PATH: cannot write (REASON)``
:class:`~melodex.errors.OutputError`. A format (see :mod:`melodex.inference.writers`) only lays
out fields, handing text to :meth:`ResultWriter.emit`, :meth:`ResultWriter.emit_failure` or
:meth:`ResultWriter.spool`.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, ClassVar, Self

from melodex.errors import OutputError
from melodex.inference.results import MODES, FileResult
from melodex.util.atomic import atomic_write, cannot_write, output_errors


class _Sink:
    """One open text destination whose OSErrors become :func:`cannot_write` for its path.

    Parameters
    ----------
    path : Path or None
        The file (None: stdout, which is never closed here).
    handle : file object
        The text handle open on it.
    """

    def __init__(self, path: Path | None, handle: IO[str]):
        self.path = path
        self.handle = handle

    @classmethod
    def open(cls, path: Path | None, *, append: bool = False) -> _Sink:
        """Open ``path`` for writing (its folder made if missing), or stdout when it is None."""
        if path is None:
            return cls(None, sys.stdout)
        with output_errors(path):
            path.parent.mkdir(parents=True, exist_ok=True)
            # errors=: a file name with undecodable bytes is written as \udcff, not a crash mid-run
            handle = open(path, "a" if append else "w", encoding="utf-8",  # noqa: SIM115 (closed by close())
                          errors="backslashreplace", newline="")
        return cls(path, handle)

    def write(self, text: str) -> None:
        with output_errors(self.path):
            self.handle.write(text)

    def flush(self) -> None:
        with output_errors(self.path):
            self.handle.flush()

    def close(self, quiet: bool = False) -> None:
        """Close the file; its last flush failing (a full disk) is an OutputError unless ``quiet``
        (closing after another error, which is the one to report)."""
        if self.handle is sys.stdout:
            return
        try:
            self.handle.close()
        except OSError as exc:
            if not quiet:
                raise cannot_write(self.path, exc) from None


class ResultWriter:
    """Base class: opens the destination, writes results, finishes on :meth:`close`.

    A streaming format (``streaming = True``) reaches its destination result by result, each
    flushed as it is written; a document format spools its sections to temporary files (memory
    stays flat) and writes the document atomically on :meth:`close`, so an interrupted run
    leaves the previous file untouched. Subclasses fill in :meth:`start`, :meth:`write_ok`,
    :meth:`write_error` and :meth:`finish` (and :meth:`render` for a document) and never touch
    a file themselves.

    Parameters
    ----------
    path : str, Path or None
        The output file; None writes to stdout.
    mode : {"first-30s", "full-file"}
        The mode of the results to come (a JSON document states it even when empty).
    embeddings : bool
        Include embeddings.
    append : bool
        Continue an existing file instead of replacing it (streaming formats only).

    Raises
    ------
    ValueError
        For an unknown ``mode``.
    OutputError
        For ``append`` on a format that cannot be appended to; from :meth:`open`, for a
        destination that cannot be written (before any result is computed).
    """

    name: ClassVar[str] = ""
    extension: ClassVar[str] = ""
    streaming: ClassVar[bool] = True  # rows reach the destination as results arrive
    supports_append: ClassVar[bool] = False

    def __init__(self, path: str | Path | None, *, mode: str, embeddings: bool = True, append: bool = False):
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
        if append and not self.supports_append:
            raise OutputError(f"the {self.name} format cannot be appended to (use jsonl to resume)")
        self.path = None if path is None else Path(path)
        self.mode = mode
        self.embeddings = embeddings
        self.append = append
        self.n_ok = 0
        self.n_failed = 0
        self._out: _Sink | None = None
        self._failures: _Sink | None = None
        self._spools: dict[str, IO[str]] = {}

    # -- lifecycle ----------------------------------------------------------------------

    def open(self) -> Self:
        """Open the destination (or, for a document, check that it can be written) and start."""
        if not self.streaming:
            self._check_location()
        else:
            self._out = _Sink.open(self.path, append=self.append)
            sidecar = self.failures_path()
            if sidecar is not None:  # a sidecar of an earlier run would now be misleading
                with output_errors(sidecar):
                    sidecar.unlink(missing_ok=True)
        self.start()
        return self

    def write_result(self, result: FileResult) -> None:
        """Write one file's result (or its error) and flush it."""
        if result.ok:
            self.n_ok += 1
            self.write_ok(result)
        else:
            self.n_failed += 1
            self.write_error(result)
        for sink in (self._failures, self._out):
            if sink is not None:
                sink.flush()

    def close(self) -> None:
        """Finish the output (a document is written here) and close it."""
        try:
            self.finish()
            if not self.streaming:
                self._write_document()
        except BaseException:
            self._release(quiet=True)
            raise
        self._release()

    def discard(self) -> None:
        """Close after a failure: streamed rows stay, an unfinished document is not written."""
        self._release(quiet=True)

    def __enter__(self) -> Self:
        return self.open()

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.discard()

    # -- what subclasses fill in ---------------------------------------------------------

    def start(self) -> None:
        """Lay out a header, if the format has one."""

    def write_ok(self, result: FileResult) -> None:
        """Lay out one successful result."""
        raise NotImplementedError

    def write_error(self, result: FileResult) -> None:
        """Lay out one failed result (``result.error`` says why)."""
        raise NotImplementedError

    def finish(self) -> None:
        """Lay out whatever comes after the last result."""

    def failures_path(self) -> Path | None:
        """The sidecar file that :meth:`emit_failure` writes to; None (the default) for none."""
        return None

    def render(self, out: IO[str]) -> None:
        """A document format: write the whole document from :meth:`spooled` sections to ``out``."""
        raise NotImplementedError

    # -- what subclasses write with ------------------------------------------------------

    def emit(self, text: str) -> None:
        """Write ``text`` to the destination (a streaming format)."""
        self._out.write(text)

    def emit_failure(self, text: str) -> None:
        """Write ``text`` to the :meth:`failures_path` sidecar, created on the first call."""
        if self._failures is None:
            self._failures = _Sink.open(self.failures_path())
        self._failures.write(text)

    def spool(self, section: str, entry: str) -> None:
        """Keep ``entry`` (one line of text, no newline) for section ``section`` of a document."""
        with output_errors(self.path):
            if section not in self._spools:
                self._spools[section] = tempfile.TemporaryFile("w+", encoding="utf-8")  # noqa: SIM115 (_release)
            self._spools[section].write(entry + "\n")

    def spooled(self, section: str) -> Iterator[str]:
        """The entries of ``section`` in the order they were spooled (none if it has none)."""
        handle = self._spools.get(section)
        if handle is None:
            return
        with output_errors(self.path):
            handle.seek(0)
            for line in handle:
                yield line[:-1]

    # -- helpers --------------------------------------------------------------------------

    def _check_location(self) -> None:
        """Fail now, not after hours of inference, when the document could not be written."""
        if self.path is None:
            return
        with output_errors(self.path):
            self.path.parent.mkdir(parents=True, exist_ok=True)
        if not os.access(self.path.parent, os.W_OK) or self.path.is_dir():
            raise cannot_write(self.path, "not a writable file location")

    def _write_document(self) -> None:
        if self.path is not None:
            with atomic_write(self.path, "w", encoding="utf-8") as out:
                self.render(out)
            return
        with output_errors(None):
            self.render(sys.stdout)
            sys.stdout.flush()

    def _release(self, quiet: bool = False) -> None:
        failures, out, spools = self._failures, self._out, self._spools
        self._failures, self._out, self._spools = None, None, {}
        for handle in spools.values():
            handle.close()
        try:
            if failures is not None:
                failures.close(quiet)
        finally:
            if out is not None:
                out.close(quiet)
