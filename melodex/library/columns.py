"""The store's columns: their names and Arrow types, and a batch of records as one Arrow table.

:class:`~melodex.library.store.LibraryStore` writes every part with :func:`records_table`;
:mod:`melodex.library.updates` uses the same function to rewrite parts in place.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pyarrow as pa

from melodex.errors import StoreError

PROB_PREFIX = "prob:"
SOURCES = ("fma", "tags", "manifest", "inference")
STRING_COLUMNS = ("track_id", "path", "title", "artist", "artist_id", "album", "date", "date_source",
                  "genre", "predicted_label", "source")
BASE_COLUMNS = ("track_id", "path", "title", "artist", "artist_id", "album", "date", "date_source", "year",
                "genre", "predicted_label", "confidence", "source", "duration")
# Release and multi-value columns (added after the first stores: a store without them reads them as missing)
RELEASE_COLUMNS = ("album_artist", "release_id")  # strings
LIST_COLUMNS = ("artists", "genres")  # list<string>: every value; ``artist``/``genre`` hold the display string
CHROMAPRINT_COLUMN = "chromaprint"  # binary: the audio fingerprint's uint32 items, little-endian (melodex.audio.fingerprint)


def year_of(date: str | None) -> int | None:
    """The year of an ISO date string (``"1999"``, ``"1999-05-01"``), or None."""
    if not date:
        return None
    match = re.match(r"^(\d{4})", str(date))
    return int(match.group(1)) if match else None


def records_table(batch: list[Any], dim: int) -> pa.Table:
    """A batch of :class:`~melodex.library.store.TrackRecord` as an Arrow table with the store's schema."""

    labels: list[str] = []
    for record in batch:
        for label in record.probabilities:
            if label not in labels:
                labels.append(label)
    columns: dict[str, pa.Array] = {}
    for name in ("track_id", "path", "title", "artist", "artist_id", "album", "date", "date_source"):
        columns[name] = pa.array([text_or_none(getattr(r, name)) for r in batch], pa.string())
    columns["year"] = pa.array([year_of(r.date) for r in batch], pa.int64())
    columns["genre"] = pa.array([text_or_none(r.genre) for r in batch], pa.string())
    predicted, confidence = [], []
    for r in batch:
        if r.probabilities:
            best = max(r.probabilities, key=lambda k: r.probabilities[k])
            predicted.append(best)
            confidence.append(float(r.probabilities[best]))
        else:
            predicted.append(None)
            confidence.append(None)
    columns["predicted_label"] = pa.array(predicted, pa.string())
    columns["confidence"] = pa.array(confidence, pa.float64())
    columns["source"] = pa.array([r.source for r in batch], pa.string())
    columns["duration"] = pa.array([None if r.duration is None else float(r.duration) for r in batch], pa.float64())
    for label in labels:
        columns[PROB_PREFIX + label] = pa.array([r.probabilities.get(label) for r in batch], pa.float64())
    for name in RELEASE_COLUMNS:
        columns[name] = pa.array([text_or_none(getattr(r, name)) for r in batch], pa.string())
    for name in LIST_COLUMNS:
        columns[name] = pa.array([None if getattr(r, name) is None else [str(v) for v in getattr(r, name)]
                                  for r in batch], pa.list_(pa.string()))
    columns[CHROMAPRINT_COLUMN] = pa.array([getattr(r, "chromaprint", None) for r in batch], pa.binary())
    flat = np.concatenate([np.asarray(r.embedding, dtype="<f4").reshape(-1) for r in batch])
    columns["embedding"] = pa.FixedSizeBinaryArray.from_buffers(pa.binary(4 * dim), len(batch),
                                                                [None, pa.py_buffer(flat.tobytes())])
    return pa.table(columns)


def embedding_width(kind: pa.DataType) -> int:
    """Floats per row of an embedding column (FixedSizeBinary of float32, or FixedSizeList)."""

    if pa.types.is_fixed_size_binary(kind):
        return kind.byte_width // 4
    if pa.types.is_fixed_size_list(kind):
        return kind.list_size
    raise StoreError(f"unexpected embedding column type {kind}; this store was not written by Melodex")


def text_or_none(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def empty_table(columns: list[str] | None) -> pa.Table:
    types = {name: pa.string() for name in STRING_COLUMNS}
    types.update(year=pa.int64(), confidence=pa.float64(), duration=pa.float64())
    names = [c for c in BASE_COLUMNS if columns is None or c in columns]
    return pa.table({name: pa.array([], types[name]) for name in names})
