"""Append-only CSV files (logs, indexes, failure lists) that a crash cannot corrupt.

Rows are written whole and flushed one at a time; a reader ignores a last line that a crash
cut short. :func:`csv_line` is the one CSV row formatter of the package.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Self

from melodex.util.atomic import output_errors


@dataclass(frozen=True)
class Failure:
    """A track whose audio could not be turned into features."""

    key: str
    path: str
    reason: str


def read_csv_lines(path: Path, header: tuple[str, ...]) -> list[list[str]]:
    """The complete rows of an append-only CSV file, header excluded.

    A last line without its newline (a write cut short by a crash) is ignored, as are rows
    with the wrong number of fields. A missing file gives no rows.
    """
    try:
        with open(path, encoding="utf-8", newline="") as handle:  # a quoted \r stays a \r
            text = handle.read()
    except FileNotFoundError:
        return []
    text = text[: text.rfind("\n") + 1]  # drop an unterminated last line
    rows = [row for row in csv.reader(io.StringIO(text)) if len(row) == len(header)]
    return rows[1:] if rows and tuple(rows[0]) == header else rows


def csv_line(*fields: object) -> str:
    """One CSV-quoted line ending in ``\\n``; a field holding ``\\r`` or ``\\n`` is quoted.

    The csv module quotes only the characters of its ``lineterminator``, so the row is made
    with ``\\r\\n`` and its end replaced: with ``\\n`` alone, a file name or error holding a
    lone ``\\r`` would be written bare and split the row for every reader.
    """
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\r\n").writerow(fields)
    return buf.getvalue()[:-2] + "\n"


class AppendLog:
    """An append-only CSV file: a header when new, then one flushed line per :meth:`append`."""

    def __init__(self, path: Path, header: tuple[str, ...]):
        self.path = path
        new = not path.exists() or path.stat().st_size == 0
        with output_errors(path):
            self._handle = open(path, "a", encoding="utf-8", newline="")  # noqa: SIM115 (closed by close())
        if not new:
            _truncate_partial_line(path)  # a line a crash cut short is dropped, never completed
        if new:
            self.append(*header)

    def append(self, *fields: object) -> None:
        with output_errors(self.path):
            self._handle.write(csv_line(*fields))
            self._handle.flush()

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _truncate_partial_line(path: Path) -> None:
    """Cut ``path`` back to its last newline (a no-op when it ends with one)."""
    with open(path, "rb+") as handle:
        data = handle.read()
        end = data.rfind(b"\n") + 1
        if end != len(data):
            handle.truncate(end)
