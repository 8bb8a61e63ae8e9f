"""Adding audio fingerprints to tracks stored without one (``melodex duplicates --fingerprint``).

``melodex index`` stores each file's Chromaprint (:mod:`melodex.audio.fingerprint`) in the
``chromaprint`` column as it decodes the file. Stores indexed before that, or from inference
JSONL, have none; :func:`add_fingerprints` decodes the first segment
(:data:`~melodex.constants.SEGMENT_SECONDS`, as indexing does) of each such track from its stored
path and rewrites the parts that changed, one at a time and atomically, so an interrupted run
keeps what it finished and a rerun does the rest. A file that is gone or unreadable is listed
and keeps no fingerprint.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from melodex.audio.fingerprint import missing_reason, segment_fingerprint
from melodex.audio.segments import read_first_segment
from melodex.constants import SAMPLE_RATE, SEGMENT_SECONDS
from melodex.errors import AudioLoadError, StoreError
from melodex.library.columns import CHROMAPRINT_COLUMN
from melodex.library.store import LibraryStore


@dataclass
class FingerprintSummary:
    """What one :func:`add_fingerprints` run did."""

    added: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)


def file_fingerprint(path: str | Path) -> bytes | None:
    """The stored form of one file's fingerprint, from its first segment; AudioLoadError when it
    cannot be decoded."""
    segment = read_first_segment(Path(path), sr=SAMPLE_RATE, window_seconds=SEGMENT_SECONDS)
    return segment_fingerprint(segment, SAMPLE_RATE)


def add_fingerprints(store: LibraryStore, *, progress: Any = None) -> FingerprintSummary:
    """Fingerprint every stored track that has none; ``progress`` (tqdm) advances per file.

    Raises StoreError when libchromaprint is missing (nothing is changed then)."""
    reason = missing_reason()
    if reason is not None:
        raise StoreError(f"{store.root}: cannot add fingerprints: {reason}")
    summary = FingerprintSummary()
    for part in store.part_files():
        table = pq.read_table(part)
        prints = (table.column(CHROMAPRINT_COLUMN).to_pylist() if CHROMAPRINT_COLUMN in table.column_names
                  else [None] * table.num_rows)
        paths = table.column("path").to_pylist()
        changed = 0
        for i, (path, stored) in enumerate(zip(paths, prints)):
            if stored is not None:
                continue
            try:
                prints[i] = file_fingerprint(path)
            except AudioLoadError as exc:
                summary.failed.append((path, exc.reason))
            else:
                changed += prints[i] is not None
            if progress is not None:
                progress.update(1)
        if changed:
            column = pa.array(prints, pa.binary())
            if CHROMAPRINT_COLUMN in table.column_names:
                table = table.set_column(table.schema.get_field_index(CHROMAPRINT_COLUMN), CHROMAPRINT_COLUMN, column)
            else:
                table = table.append_column(CHROMAPRINT_COLUMN, column)
            store.rewrite_part(part, table)
            summary.added += changed
    return summary
