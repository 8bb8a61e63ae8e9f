"""Writing :class:`~melodex.inference.results.FileResult` objects: one small writer class per format.

``get_writer(fmt)`` returns the class; every writer is used the same way::

    with get_writer("jsonl")("out.jsonl", mode="full-file", embeddings=True) as writer:
        for result in predictor.predict(paths, full=True):
            writer.write_result(result)

A writer without a path writes to stdout. Formats (``embeddings=False`` removes every
embedding field and column; a flag chooses fields, never another code path):

``jsonl`` (streaming, one line per file, flushed as each file finishes)
    ``{"audio_file", "mode", "duration", "total_segments", "segments": [{"segment_index",
    "start_time", "end_time", "predictions": {label: p}}], "global_prediction": {"top_labels",
    "probabilities", "all_probabilities"}, "embedding"}``; a failed file is
    ``{"audio_file", "error"}``. ``append=True`` continues an existing file (``--resume``).
``json`` (one document, written atomically when the writer closes)
    ``{"audio_files", "mode", "predictions", "embeddings", "errors"}``; ``audio_files``,
    ``predictions`` and ``embeddings`` are parallel lists over the files that succeeded,
    ``errors`` lists ``{"audio_file", "error"}``. Each prediction is, in first-30s mode,
    ``{"audio_file", "predicted_label", "confidence", "all_probabilities", "duration"}`` and in
    full-file mode ``{"audio_file", "top_predictions": [{"label", "probability"}], "duration"}``.
    Sections are spooled to temporary files, so memory stays flat for any number of files.
``csv`` (streaming, a row per file as it finishes)
    first-30s: ``audio_file,predicted_label,confidence,embedding``; full-file:
    ``audio_file,rank,predicted_label,probability,embedding`` with three rows per file (ranks
    1-3) and the embedding on the rank-1 row only. An embedding cell is ``[0.1, 0.2, ...]``.
    Failed files go to a sidecar ``<stem>.errors.csv`` (``audio_file,error``) beside the output,
    created only when a file fails.
``table`` (stdout only)
    An aligned human-readable table: file, top label and confidence, 2nd and 3rd, and a
    summary line.

Probabilities are the mean of the segments' softmax outputs and the embedding the mean of
the segments' embeddings (see :mod:`melodex.inference.results`). Top-k lists hold 3 entries, fewer when
the model has fewer labels.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import IO, Any, ClassVar

from melodex.errors import OutputError
from melodex.inference.results import MODE_FIRST, MODES, FileResult
from melodex.util.atomic import atomic_write, describe_os_error

TOP_K = 3


def _embedding_list(result: FileResult) -> list[float]:
    return [] if result.embedding is None else result.embedding.tolist()


def jsonl_record(result: FileResult, *, embeddings: bool = True) -> dict[str, Any]:
    """The JSONL dict of one result (see the module docstring for the fields)."""
    if not result.ok:
        return {"audio_file": result.audio_file, "error": result.error}
    top = result.top(TOP_K)
    record: dict[str, Any] = {
        "audio_file": result.audio_file,
        "mode": result.mode,
        "duration": result.duration,
        "total_segments": len(result.segments),
        "segments": [
            {
                "segment_index": seg.index,
                "start_time": seg.start_time,
                "end_time": seg.end_time,
                "predictions": {label: float(p) for label, p in zip(result.labels, seg.probabilities)},
            }
            for seg in result.segments
        ],
        "global_prediction": {
            "top_labels": [label for label, _ in top],
            "probabilities": [p for _, p in top],
            "all_probabilities": result.all_probabilities(),
        },
    }
    if embeddings:
        record["embedding"] = _embedding_list(result)
    return record


class ResultWriter:
    """Base class: opens the destination, writes results, finishes on :meth:`close`.

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
        self._file: IO[str] | None = None

    # -- lifecycle ----------------------------------------------------------------------

    def open(self) -> ResultWriter:
        if self.path is None:
            self._file = sys.stdout
        else:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                # errors=: a file name with undecodable bytes is written as \udcff, not a crash mid-run
                self._file = open(self.path, "a" if self.append else "w", encoding="utf-8",
                                  errors="backslashreplace", newline="")
            except OSError as exc:
                raise OutputError(f"{self.path}: cannot write ({describe_os_error(exc)})") from None
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
        self._flush()

    def close(self) -> None:
        """Finish the output (a JSON document is written here) and close it."""
        self.finish()
        self._release()

    def discard(self) -> None:
        """Close after a failure: streamed rows stay, an unfinished document is not written."""
        self._release(quiet=True)

    def __enter__(self) -> ResultWriter:
        return self.open()

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.discard()

    # -- what subclasses fill in ---------------------------------------------------------

    def start(self) -> None:
        """Write a header, if the format has one."""

    def write_ok(self, result: FileResult) -> None:
        raise NotImplementedError

    def write_error(self, result: FileResult) -> None:
        raise NotImplementedError

    def finish(self) -> None:
        """Write whatever comes after the last result."""

    # -- helpers --------------------------------------------------------------------------

    def _write(self, text: str) -> None:
        try:
            self._file.write(text)
        except OSError as exc:
            raise OutputError(f"{self.path or 'stdout'}: cannot write ({describe_os_error(exc)})") from None

    def _flush(self) -> None:
        if self._file is not None:
            try:
                self._file.flush()
            except OSError as exc:
                raise OutputError(f"{self.path or 'stdout'}: cannot write ({describe_os_error(exc)})") from None

    def _release(self, quiet: bool = False) -> None:
        if self._file is not None and self._file is not sys.stdout:
            _close(self._file, self.path, quiet)
        self._file = None


def _close(handle: IO[str], path: Path | None, quiet: bool) -> None:
    """Close ``handle``; its last flush failing (a full disk) is an OutputError unless ``quiet``
    (closing after another error, which is the one to report)."""
    try:
        handle.close()
    except OSError as exc:
        if not quiet:
            raise OutputError(f"{path}: cannot write ({describe_os_error(exc)})") from None


class JSONLWriter(ResultWriter):
    name = "jsonl"
    extension = ".jsonl"
    supports_append = True

    def write_ok(self, result: FileResult) -> None:
        self._write(json.dumps(jsonl_record(result, embeddings=self.embeddings)) + "\n")

    def write_error(self, result: FileResult) -> None:
        self._write(json.dumps(jsonl_record(result)) + "\n")


class JSONWriter(ResultWriter):
    """One JSON document, assembled from spooled sections and written atomically at the end."""

    name = "json"
    extension = ".json"
    streaming = False

    def open(self) -> JSONWriter:
        if self.path is not None:  # fail now, not after hours of inference
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise OutputError(f"{self.path}: cannot write ({describe_os_error(exc)})") from None
            if not os.access(self.path.parent, os.W_OK) or self.path.is_dir():
                raise OutputError(f"{self.path}: cannot write (not a writable file location)")
        self._sections = {key: tempfile.TemporaryFile("w+", encoding="utf-8") for key in self._keys()}
        self._counts = dict.fromkeys(self._sections, 0)
        return self

    def _keys(self) -> list[str]:
        return ["audio_files", "predictions"] + (["embeddings"] if self.embeddings else []) + ["errors"]

    def _add(self, key: str, value: Any) -> None:
        handle = self._sections[key]
        handle.write((",\n    " if self._counts[key] else "\n    ") + json.dumps(value))
        self._counts[key] += 1

    def write_ok(self, result: FileResult) -> None:
        self._add("audio_files", result.audio_file)
        if self.mode == MODE_FIRST:
            (label, confidence), = result.top(1)
            entry = {"audio_file": result.audio_file, "predicted_label": label, "confidence": confidence,
                     "all_probabilities": result.all_probabilities()}
        else:
            entry = {"audio_file": result.audio_file,
                     "top_predictions": [{"label": lab, "probability": p} for lab, p in result.top(TOP_K)]}
        entry["duration"] = result.duration
        self._add("predictions", entry)
        if self.embeddings:
            self._add("embeddings", _embedding_list(result))

    def write_error(self, result: FileResult) -> None:
        self._add("errors", {"audio_file": result.audio_file, "error": result.error})

    def _document(self, out: IO[str]) -> None:
        out.write("{\n")
        for i, key in enumerate(self._keys()):
            if key == "predictions":
                out.write(f'  "mode": {json.dumps(self.mode)},\n')
            handle = self._sections[key]
            handle.seek(0)
            out.write(f'  "{key}": [')
            shutil.copyfileobj(handle, out)
            out.write("\n  ]" if self._counts[key] else "]")
            out.write(",\n" if i < len(self._keys()) - 1 else "\n")
        out.write("}\n")

    def close(self) -> None:
        try:
            if self.path is None:
                self._document(sys.stdout)
                sys.stdout.flush()
            else:
                with atomic_write(self.path, "w", encoding="utf-8") as out:
                    self._document(out)
        finally:
            self.discard()

    def discard(self) -> None:
        for handle in getattr(self, "_sections", {}).values():
            handle.close()
        self._sections = {}

    def _flush(self) -> None:
        pass  # nothing reaches the destination before close()


def errors_path(output: str | Path) -> Path:
    """The sidecar that lists a CSV output's failed files: ``<stem>.errors.csv`` beside it."""
    output = Path(output)
    return output.with_name(output.stem + ".errors.csv")


class _CsvRows:
    """``csv.writer`` with ``\n`` line ends that still quotes a field holding a lone ``\r``.

    The csv module quotes only the characters of its ``lineterminator``; with ``"\n"`` a file
    name or error containing ``\r`` would be written bare and split the row for every reader.
    """

    def __init__(self, handle: IO[str]):
        self._handle = handle
        self._buffer = io.StringIO()
        self._csv = csv.writer(self._buffer, lineterminator="\r\n")

    def writerow(self, row: list[Any]) -> None:
        self._buffer.seek(0)
        self._buffer.truncate()
        self._csv.writerow(row)
        self._handle.write(self._buffer.getvalue()[:-2] + "\n")


class CSVWriter(ResultWriter):
    name = "csv"
    extension = ".csv"

    def start(self) -> None:
        self._csv = _CsvRows(self._file)
        self._errors: IO[str] | None = None
        self._errors_csv = None
        if self.path is not None:  # a sidecar of an earlier run would now be misleading
            errors_path(self.path).unlink(missing_ok=True)
        if self.mode == MODE_FIRST:
            header = ["audio_file", "predicted_label", "confidence"]
        else:
            header = ["audio_file", "rank", "predicted_label", "probability"]
        self._row(header + (["embedding"] if self.embeddings else []))

    def _row(self, row: list[Any]) -> None:
        try:
            self._csv.writerow(row)
        except OSError as exc:
            raise OutputError(f"{self.path or 'stdout'}: cannot write ({describe_os_error(exc)})") from None

    def write_ok(self, result: FileResult) -> None:
        emb = [json.dumps(_embedding_list(result))] if self.embeddings else []
        if self.mode == MODE_FIRST:
            (label, confidence), = result.top(1)
            self._row([result.audio_file, label, confidence] + emb)
            return
        for rank, (label, p) in enumerate(result.top(TOP_K), start=1):
            self._row([result.audio_file, rank, label, p] + (emb if rank == 1 else [""] * len(emb)))

    def write_error(self, result: FileResult) -> None:
        if self.path is None:
            return  # stdout has no sidecar; the run's summary names the failures
        if self._errors is None:
            target = errors_path(self.path)
            try:
                self._errors = open(target, "w", encoding="utf-8", errors="backslashreplace", newline="")
            except OSError as exc:
                raise OutputError(f"{target}: cannot write ({describe_os_error(exc)})") from None
            self._errors_csv = _CsvRows(self._errors)
            self._errors_csv.writerow(["audio_file", "error"])
        try:
            self._errors_csv.writerow([result.audio_file, result.error])
            self._errors.flush()
        except OSError as exc:
            raise OutputError(f"{errors_path(self.path)}: cannot write ({describe_os_error(exc)})") from None

    def _release(self, quiet: bool = False) -> None:
        if getattr(self, "_errors", None) is not None:
            errors, self._errors = self._errors, None
            _close(errors, errors_path(self.path), quiet)
        super()._release(quiet)


class TableWriter(ResultWriter):
    """An aligned table for people; ``name_width`` fixes the file column up front."""

    name = "table"
    extension = ".txt"

    def __init__(self, path: str | Path | None = None, *, mode: str, embeddings: bool = False,
                 append: bool = False, name_width: int = 40, label_width: int = 12):
        super().__init__(path, mode=mode, embeddings=embeddings, append=append)
        self.name_width = max(8, min(name_width, 70))
        self.label_width = max(5, label_width)

    def _cell(self, pair: tuple[str, float] | None) -> str:
        if pair is None:
            return " " * (self.label_width + 7)
        return f"{pair[0]:<{self.label_width}} {pair[1]:6.1%}"

    def _name(self, name: str) -> str:
        if len(name) > self.name_width:
            name = "..." + name[-(self.name_width - 3):]
        return f"{name:<{self.name_width}}"

    def start(self) -> None:
        w = self.label_width + 7
        self._write(f"{'file':<{self.name_width}}  {'top label':<{w}}  {'2nd':<{w}}  {'3rd':<{w}}\n".rstrip() + "\n")

    def write_ok(self, result: FileResult) -> None:
        top = result.top(TOP_K) + [None] * TOP_K
        self._write(("  ".join([self._name(result.audio_file)] + [self._cell(t) for t in top[:TOP_K]])).rstrip() + "\n")

    def write_error(self, result: FileResult) -> None:
        self._write(f"{self._name(result.audio_file)}  ERROR: {result.error}\n")

    def finish(self) -> None:
        total = self.n_ok + self.n_failed
        self._write(f"{total} file{'s' if total != 1 else ''}: {self.n_ok} ok, {self.n_failed} failed\n")


WRITERS: dict[str, type[ResultWriter]] = {w.name: w for w in (JSONWriter, JSONLWriter, CSVWriter, TableWriter)}
FILE_FORMATS = ("json", "jsonl", "csv")


def get_writer(fmt: str) -> type[ResultWriter]:
    """The writer class for ``fmt`` (``json``, ``jsonl``, ``csv`` or ``table``)."""
    try:
        return WRITERS[fmt.lower()]
    except KeyError:
        raise OutputError(f"unknown output format {fmt!r}; choose from {', '.join(FILE_FORMATS)}") from None


def format_from_path(path: str | Path) -> str:
    """``json``/``jsonl``/``csv`` from an output file's extension (any case).

    Raises OutputError when the extension names none of them.
    """
    suffix = Path(path).suffix.lower()
    for fmt in FILE_FORMATS:
        if WRITERS[fmt].extension == suffix:
            return fmt
    raise OutputError(f"{path}: cannot tell the format from the extension; use --format {{{','.join(FILE_FORMATS)}}}")

