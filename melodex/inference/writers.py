"""Writing :class:`~melodex.inference.results.FileResult` objects: one small writer class per format.

``get_writer(fmt)`` returns the class; every writer is used the same way::

    with get_writer("jsonl")("out.jsonl", mode="full-file", embeddings=True) as writer:
        for result in predictor.predict(paths, full=True):
            writer.write_result(result)

Each class here only lays out fields; :class:`~melodex.inference.writers_base.ResultWriter`
opens, flushes and closes every destination and turns each OSError into one
``PATH: cannot write (REASON)`` :class:`~melodex.errors.OutputError`.

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
    ``errors`` lists ``{"audio_file", "error"}`` and is written only when a file failed. Without
    it ``pd.read_json(path)`` gives one row per file; with it (another length) read the document
    with ``pd.read_json(path, typ="series")`` and make frames of its ``predictions`` and ``errors``. Each prediction is, in first-30s mode,
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

A model without a genre head (no labels) keeps every field and column, its predictions empty:
JSONL ``{}`` and ``[]``; JSON ``predicted_label``/``confidence`` ``null``, ``all_probabilities``
``{}``, ``top_predictions`` ``[]``; CSV empty label, confidence, rank and probability cells and one
row per file in both modes (so the embedding is written); the table shows durations and says
"no genre head".
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import IO, Any

from melodex.errors import OutputError
from melodex.inference.results import MODE_FIRST, FileResult
from melodex.inference.writers_base import ResultWriter
from melodex.util.csvlog import csv_line

__all__ = ["FILE_FORMATS", "TOP_K", "WRITERS", "CSVWriter", "JSONLWriter", "JSONWriter", "ResultWriter",
           "TableWriter", "errors_path", "format_from_path", "get_writer", "jsonl_record"]

TOP_K = 3


def _embedding_list(result: FileResult) -> list[float]:
    return [] if result.embedding is None else result.embedding.tolist()


def _best(result: FileResult) -> tuple[str | None, float | None]:
    """The most probable label and its probability; (None, None) for a headless model's result."""
    top = result.top(1)
    return top[0] if top else (None, None)


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


class JSONLWriter(ResultWriter):
    """One JSON object per line, flushed as each file finishes; ``append=True`` resumes a file."""

    name = "jsonl"
    extension = ".jsonl"
    supports_append = True

    def write_ok(self, result: FileResult) -> None:
        self.emit(json.dumps(jsonl_record(result, embeddings=self.embeddings)) + "\n")

    def write_error(self, result: FileResult) -> None:
        self.emit(json.dumps(jsonl_record(result)) + "\n")


class JSONWriter(ResultWriter):
    """One JSON document of parallel lists, assembled from spooled sections at the end."""

    name = "json"
    extension = ".json"
    streaming = False

    def _keys(self) -> list[str]:
        # "errors" only when a file failed: without it every list has one entry per file, so
        # pd.read_json reads the document as a frame of one row per file
        failed = ["errors"] if "errors" in self._spools else []
        return ["audio_files", "predictions"] + (["embeddings"] if self.embeddings else []) + failed

    def write_ok(self, result: FileResult) -> None:
        self.spool("audio_files", json.dumps(result.audio_file))
        if self.mode == MODE_FIRST:
            label, confidence = _best(result)
            entry = {"audio_file": result.audio_file, "predicted_label": label, "confidence": confidence,
                     "all_probabilities": result.all_probabilities()}
        else:
            entry = {"audio_file": result.audio_file,
                     "top_predictions": [{"label": lab, "probability": p} for lab, p in result.top(TOP_K)]}
        entry["duration"] = result.duration
        self.spool("predictions", json.dumps(entry))
        if self.embeddings:
            self.spool("embeddings", json.dumps(_embedding_list(result)))

    def write_error(self, result: FileResult) -> None:
        self.spool("errors", json.dumps({"audio_file": result.audio_file, "error": result.error}))

    def render(self, out: IO[str]) -> None:
        keys = self._keys()
        out.write("{\n")
        for i, key in enumerate(keys):
            if key == "predictions":
                out.write(f'  "mode": {json.dumps(self.mode)},\n')
            out.write(f'  "{key}": [')
            n = 0
            for n, entry in enumerate(self.spooled(key), start=1):
                out.write((",\n    " if n > 1 else "\n    ") + entry)
            out.write("\n  ]" if n else "]")
            out.write(",\n" if i < len(keys) - 1 else "\n")
        out.write("}\n")


def errors_path(output: str | Path) -> Path:
    """The sidecar that lists a CSV output's failed files: ``<stem>.errors.csv`` beside it."""
    output = Path(output)
    return output.with_name(output.stem + ".errors.csv")


class CSVWriter(ResultWriter):
    """A row per file (three in full-file mode); failures go to the :func:`errors_path` sidecar."""

    name = "csv"
    extension = ".csv"

    def failures_path(self) -> Path | None:
        return None if self.path is None else errors_path(self.path)

    def start(self) -> None:
        if self.mode == MODE_FIRST:
            header = ["audio_file", "predicted_label", "confidence"]
        else:
            header = ["audio_file", "rank", "predicted_label", "probability"]
        self.emit(csv_line(*header, *(["embedding"] if self.embeddings else [])))

    def write_ok(self, result: FileResult) -> None:
        emb = [json.dumps(_embedding_list(result))] if self.embeddings else []
        if self.mode == MODE_FIRST:
            label, confidence = _best(result)
            self.emit(csv_line(result.audio_file, label, confidence, *emb))
            return
        if not result.labels:  # a headless model: one row, its embedding, no rank or label
            self.emit(csv_line(result.audio_file, None, None, None, *emb))
        for rank, (label, p) in enumerate(result.top(TOP_K), start=1):
            self.emit(csv_line(result.audio_file, rank, label, p, *(emb if rank == 1 else [""] * len(emb))))

    def write_error(self, result: FileResult) -> None:
        if self.path is None:
            return  # stdout has no sidecar; the run's summary names the failures
        if self.n_failed == 1:
            self.emit_failure(csv_line("audio_file", "error"))
        self.emit_failure(csv_line(result.audio_file, result.error))


class TableWriter(ResultWriter):
    """An aligned table for people; ``name_width`` fixes the file column up front.

    ``headless`` (a model without a genre head): the file and its duration in each row, and a
    summary line that says the model has no genre head, instead of empty label columns."""

    name = "table"
    extension = ".txt"

    def __init__(self, path: str | Path | None = None, *, mode: str, embeddings: bool = False,
                 append: bool = False, name_width: int = 40, label_width: int = 12, headless: bool = False):
        super().__init__(path, mode=mode, embeddings=embeddings, append=append)
        self.name_width = max(8, min(name_width, 70))
        self.label_width = max(5, label_width)
        self.headless = headless

    def _cell(self, pair: tuple[str, float] | None) -> str:
        if pair is None:
            return " " * (self.label_width + 7)
        return f"{pair[0]:<{self.label_width}} {pair[1]:6.1%}"

    def _name(self, name: str) -> str:
        if len(name) > self.name_width:
            name = "..." + name[-(self.name_width - 3):]
        return f"{name:<{self.name_width}}"

    def start(self) -> None:
        if self.headless:
            self.emit(f"{'file':<{self.name_width}}  {'duration':>10}\n")
            return
        w = self.label_width + 7
        self.emit(f"{'file':<{self.name_width}}  {'top label':<{w}}  {'2nd':<{w}}  {'3rd':<{w}}\n".rstrip() + "\n")

    def write_ok(self, result: FileResult) -> None:
        if self.headless:
            duration = "" if result.duration is None else f"{result.duration:8.1f} s"
            self.emit(f"{self._name(result.audio_file)}  {duration}".rstrip() + "\n")
            return
        top = result.top(TOP_K) + [None] * TOP_K
        self.emit(("  ".join([self._name(result.audio_file)] + [self._cell(t) for t in top[:TOP_K]])).rstrip() + "\n")

    def write_error(self, result: FileResult) -> None:
        self.emit(f"{self._name(result.audio_file)}  ERROR: {result.error}\n")

    def finish(self) -> None:
        total = self.n_ok + self.n_failed
        note = ("; no genre head (this model gives embeddings only: write them with --output FILE.jsonl)"
                if self.headless else "")
        self.emit(f"{total} file{'s' if total != 1 else ''}: {self.n_ok} ok, {self.n_failed} failed{note}\n")


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
