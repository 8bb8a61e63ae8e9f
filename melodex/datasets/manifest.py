"""A CSV manifest: one row per track, ``path,label[,artist,artist_id,date,title,album,split]``.

* The header line names the columns (any order, any letter case); ``path`` and ``label`` are
  required. Other columns are kept in ``Track.extra``.
* A relative ``path`` is resolved against the manifest's folder, so a manifest travels with
  its audio.
* ``date`` is ``YYYY``, ``YYYY-MM`` or ``YYYY-MM-DD`` (a time after it is dropped).
  ``split`` is ``training``/``validation``/``test`` (``train``, ``val``, ``valid`` are
  accepted). When the column is present every row must name a split; without it the
  deterministic split of :func:`melodex.datasets.splits.stratified_split` is used.
* A row whose audio file does not exist is skipped with a warning and listed in
  ``Dataset.skipped``. Anything malformed (a missing column, a row with too many or too few
  fields, an empty path or label, a bad date or split, a duplicate path, a field longer than
  :data:`MAX_FIELD_CHARS`) raises :class:`~melodex.errors.DatasetError` naming the line.
"""

from __future__ import annotations

import csv
import logging
import os
import re
from pathlib import Path

from melodex.datasets.base import SPLITS, Dataset, Track
from melodex.datasets.splits import key_from_relpath, stratified_split
from melodex.errors import DatasetError

log = logging.getLogger(__name__)

REQUIRED = ("path", "label")
KNOWN = ("path", "label", "artist", "artist_id", "date", "title", "album", "split")
MAX_FIELD_CHARS = 4096
_SPLIT_ALIASES = {
    "train": "training",
    "training": "training",
    "val": "validation",
    "valid": "validation",
    "validation": "validation",
    "test": "test",
}
_DATE = re.compile(r"^\d{4}(-(0[1-9]|1[0-2])(-(0[1-9]|[12]\d|3[01])([ T]\d\d:\d\d(:\d\d)?)?)?)?$")


def load_manifest(manifest: str | Path, *, seed: int = 0) -> Dataset:
    """Read a CSV manifest into a :class:`Dataset` (see the module docstring for the format).

    Raises
    ------
    DatasetError
        The manifest is missing, unreadable or malformed; the message names the line.
    """
    manifest = Path(manifest)
    if not manifest.is_file():
        raise DatasetError(f"{manifest}: manifest not found")
    rows = _read_rows(manifest)
    base = manifest.parent
    has_split = "split" in rows.header
    entries: list[dict[str, str]] = []
    skipped: list[tuple[str, str]] = []
    seen: dict[str, int] = {}
    taken: set[str] = set()
    for line, record in rows.records:
        _validate(manifest, line, record, has_split)
        raw = record["path"]
        path = Path(raw) if os.path.isabs(raw) else base / raw
        norm = os.path.normpath(path)
        if norm in seen:
            raise DatasetError(
                f"{manifest}: line {line}: path {raw!r} is listed twice (first on line {seen[norm]})"
            )
        seen[norm] = line
        if not path.is_file():
            skipped.append((raw, f"line {line}: audio file missing"))
            continue
        rel = os.path.relpath(norm, base) if not os.path.isabs(raw) else raw.lstrip("/\\")
        record["key"] = key_from_relpath(rel, taken)
        record["_path"] = str(path)
        entries.append(record)
    if skipped:
        log.warning(
            "skipping %d manifest rows whose audio is missing: %s",
            len(skipped),
            ", ".join(f"{p} ({r.split(':')[0]})" for p, r in skipped[:10]),
        )
    if not entries:
        raise DatasetError(
            f"{manifest}: no usable rows (every listed audio file is missing or the manifest is empty)"
        )
    if not has_split:
        splits = stratified_split(((r["key"], r["label"]) for r in entries), seed=seed)
        for r in entries:
            r["split"] = splits[r["key"]]
    tracks = [_track(r) for r in entries]
    labels = sorted({t.label for t in tracks if t.label is not None})
    return Dataset(name=manifest.stem, root=base, tracks=tracks, labels=labels, skipped=skipped)


class _Rows:
    def __init__(self, header: list[str], records: list[tuple[int, dict[str, str]]]):
        self.header = header
        self.records = records


def _read_rows(manifest: Path) -> _Rows:
    try:
        with open(manifest, newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle)
            header = _header(manifest, reader)
            records: list[tuple[int, dict[str, str]]] = []
            for fields in reader:
                line = reader.line_num
                if not fields or all(not f.strip() for f in fields):
                    continue
                if len(fields) != len(header):
                    raise DatasetError(
                        f"{manifest}: line {line}: {len(fields)} fields, the header has {len(header)}"
                    )
                for name, value in zip(header, fields, strict=True):
                    if len(value) > MAX_FIELD_CHARS:
                        raise DatasetError(
                            f"{manifest}: line {line}: field {name!r} is {len(value)} characters long "
                            f"(more than {MAX_FIELD_CHARS})"
                        )
                records.append(
                    (line, {name: value.strip() for name, value in zip(header, fields, strict=True)})
                )
    except csv.Error as exc:
        raise DatasetError(f"{manifest}: line {reader.line_num}: malformed CSV ({exc})") from None
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{manifest}: not a UTF-8 text file ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise DatasetError(f"{manifest}: cannot read ({exc.strerror or exc})") from None
    return _Rows(header, records)


def _header(manifest: Path, reader) -> list[str]:
    try:
        header = [h.strip().lower() for h in next(reader)]
    except StopIteration:
        raise DatasetError(f"{manifest}: empty manifest (expected a header line 'path,label,...')") from None
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise DatasetError(
            f"{manifest}: line 1: missing column {', '.join(missing)} "
            f"(the header must name at least path,label; got {','.join(header)[:200]})"
        )
    dup = sorted({h for h in header if header.count(h) > 1})
    if dup:
        raise DatasetError(f"{manifest}: line 1: column {', '.join(dup)} appears twice")
    return header


def _validate(manifest: Path, line: int, record: dict[str, str], has_split: bool) -> None:
    def fail(problem: str) -> DatasetError:
        return DatasetError(f"{manifest}: line {line}: {problem}")

    if not record["path"]:
        raise fail("empty path")
    if "\x00" in record["path"]:
        raise fail("path contains a NUL character")
    if not record["label"]:
        raise fail("empty label")
    date = record.get("date", "")
    if date and not _DATE.match(date):
        raise fail(f"date {date[:40]!r} is not YYYY, YYYY-MM or YYYY-MM-DD")
    if len(date) > 10:  # a time of day: keep the date
        record["date"] = date[:10]
    if has_split:
        split = _SPLIT_ALIASES.get(record["split"].lower())
        if split is None:
            raise fail(f"split {record['split'][:40]!r} is not one of {', '.join(SPLITS)}")
        record["split"] = split


def _track(record: dict[str, str]) -> Track:
    extra = {k: v for k, v in record.items() if k not in KNOWN and k not in ("key", "_path")}
    return Track(
        key=record["key"],
        path=Path(record["_path"]),
        label=record["label"],
        split=record["split"],
        artist=record.get("artist") or None,
        artist_id=record.get("artist_id") or None,
        title=record.get("title") or None,
        album=record.get("album") or None,
        date=record.get("date") or None,
        date_source="manifest.date" if record.get("date") else None,
        extra=extra,
    )
