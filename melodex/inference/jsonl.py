"""Reading inference JSONL files back: the lines of a results file, and repairing one to resume.

``melodex infer --format jsonl`` appends one JSON object per file as it finishes; a killed run
can leave an unfinished last line. :func:`prepare_resume` makes such a file safe to append to,
and :func:`iter_jsonl` reads the lines of one for ``melodex index --from-jsonl``.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from melodex.errors import DatasetError, OutputError
from melodex.util.atomic import atomic_write
from melodex.util.uri import scheme_of

log = logging.getLogger(__name__)


def resume_key(audio_file: str) -> str:
    """The identity of a file in a results file being resumed: its absolute path (a URI as it is)."""
    return audio_file if scheme_of(audio_file) else os.path.abspath(audio_file)


def prepare_resume(path: Path, mode: str) -> set[str]:
    """Make ``path`` (JSONL) safe to append to and return the files it already holds.

    Lines kept: complete, valid JSON, successful, first occurrence of their file. Dropped
    (and rewritten away atomically): an unfinished last line, unparsable lines, error lines
    (their files are retried) and duplicates. Returns absolute paths of the kept files.

    Raises OutputError when the file holds results of the other mode.
    """

    if not path.exists():
        return set()
    done: set[str] = set()
    dropped = {"unfinished": 0, "unreadable": 0, "error": 0, "duplicate": 0}
    keep: list[bool] = []
    with open(path, "rb") as handle:
        for raw in handle:
            reason = None
            if not raw.endswith(b"\n"):
                reason = "unfinished"
            else:
                try:
                    record = json.loads(raw)
                    file = record["audio_file"]
                except (ValueError, KeyError, TypeError):
                    reason = "unreadable"
                else:
                    if "error" in record:
                        reason = "error"
                    elif record.get("mode") not in (None, mode):
                        raise OutputError(f"{path}: holds {record.get('mode')} results; cannot resume it "
                                          f"with {mode} (drop or add --full, or choose another --output)")
                    elif resume_key(file) in done:
                        reason = "duplicate"
                    else:
                        done.add(resume_key(file))
            if reason:
                dropped[reason] += 1
            keep.append(reason is None)
    if not all(keep):
        with open(path, "rb") as src, atomic_write(path, "wb") as dst:
            for raw, kept in zip(src, keep):
                if kept:
                    dst.write(raw)
        log.info("%s: dropped %s", path, ", ".join(f"{n} {why} line(s)" for why, n in dropped.items() if n))
    return done


# ------------------------------------------------------------------------------- JSONL
NOT_JSONL = "not an inference JSONL (one JSON result per line); write one with 'melodex infer --format jsonl'"


def iter_jsonl(path: str | Path) -> Iterator[dict[str, Any]]:
    """The records of an inference JSONL file; an unparsable line becomes ``{"audio_file", "error"}``.

    The file is checked before the first record is returned: a file that is not JSON Lines at all
    (a CSV, a JSON document) or whose results carry no embeddings (``infer --no-embeddings``)
    raises one :class:`~melodex.errors.DatasetError` naming the file, instead of one failure per line.
    """
    check_inference_jsonl(path)
    return _records(path)


def check_inference_jsonl(path: str | Path) -> None:
    """Raise DatasetError when ``path`` cannot be an inference JSONL with embeddings.

    Reads up to the first successful result: the first non-empty line must be a JSON object
    with an ``audio_file``, and the first result without an ``error`` must hold an ``embedding``.
    """
    for number, line in enumerate(_lines(path), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        if not isinstance(record, dict) or "audio_file" not in record:
            raise DatasetError(f"{path}: {_what_it_is(path, line, number)}")
        if record.get("error"):
            continue
        if "embedding" not in record:
            raise DatasetError(f"{path}: results without embeddings (written with --no-embeddings); run "
                               "'melodex infer --format jsonl' without --no-embeddings, or index the audio "
                               "with 'melodex index --audio ... --model ...'")
        return


def _what_it_is(path: str | Path, line: str, number: int) -> str:
    """What a file whose line ``number`` is not an inference result seems to be, and what to do."""
    head = line.lstrip()
    if Path(path).suffix.lower() == ".json" or head[:1] in "[{":
        return f"a JSON document, {NOT_JSONL}"
    if Path(path).suffix.lower() in (".csv", ".tsv") or head.count(",") + head.count("\t") >= 1:
        return f"a CSV/text table, {NOT_JSONL}"
    return f"line {number} is not a JSON result, so this is {NOT_JSONL}"


def _lines(path: str | Path) -> Iterator[str]:
    try:
        handle = open(path, encoding="utf-8", errors="replace")
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    with handle:
        yield from handle


def _records(path: str | Path) -> Iterator[dict[str, Any]]:
    for number, line in enumerate(_lines(path), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            if not isinstance(record, dict):
                raise ValueError("not a JSON object")
        except ValueError as exc:
            yield {"audio_file": f"{path}:{number}", "error": f"unparsable line ({exc})"}
            continue
        yield record
