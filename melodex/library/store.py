"""The library store: every indexed track's metadata, genre probabilities and embedding on disk.

A store is a directory (by default ``melodex_outputs/library``) of Parquet files::

    library/
      parts/part-000000-1a2b3c4d.parquet   # one file per appended batch
      parts/part-000001-...parquet
      _staging/<run>/*.parquet.staged      # only while index --engine ray runs: parts written by
                                           # the cluster's workers, moved into parts/ by the driver
      _map/coordinates.arrow, map_info.json  # the saved 2-D map (melodex.library.store_map)
      _reembed/                            # only while --reembed runs (melodex.library.updates)

The ``*.parquet`` files under it are exactly the parts, all of one schema, so the folder reads
as one table: ``pd.read_parquet(store)``, ``pyarrow.dataset.dataset(store)``, DuckDB's
``read_parquet('store/**/*.parquet')``. Which model made the embeddings and how they are
encoded is in each part (:mod:`melodex.library.schema`); one store holds one model's vectors.

Why Parquet (through pyarrow): it is columnar, so ``keys()`` reads one column and ``tracks()``
skips the embeddings; it is compressed;
appending is writing one more part file (atomically: written under a temporary name, then
renamed), so an interrupted ``melodex index`` loses at most the batch in flight and old parts are
never touched; one self-describing file per batch holds metadata, probabilities and embeddings.

Embeddings are stored as a ``FixedSizeBinary(4 * 512)`` column: each row is the embedding's
little-endian float32 bytes, so loading is one ``memcpy`` per part. Measured on the (shared,
2-core) development machine at 100,000 tracks, reading that column takes about 0.3-0.4 s
against about 1.0-1.2 s for a ``FixedSizeList<float32>[512]`` column (Parquet stores a list with
one repetition level per float, 51 million of them) and about 0.3 s for one ``.npy`` per part,
which would need a second file per batch kept in step with the first. The embedding column is
not compressed (zstd saves ~40% on ReLU embeddings but doubles the load time); the metadata
columns are zstd-compressed. ``benchmarks/bench_analysis.py`` measures the whole load.

Missing metadata stays missing: strings are ``<NA>`` and ``year`` is ``<NA>`` when unknown.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from melodex.util.uri import local_path
from melodex.constants import DEFAULT_STORE
from melodex.errors import StoreError
from melodex.library import store_map
from melodex.library.columns import (  # noqa: F401  (the column names are part of the store's API)
    BASE_COLUMNS,
    LIST_COLUMNS,
    PROB_PREFIX,
    RELEASE_COLUMNS,
    SOURCES,
    STRING_COLUMNS,
    embedding_width,
    empty_table,
    records_table,
    year_of,
)
from melodex.library.compaction import merge_groups
from melodex.library.schema import MODEL_KEY, ModelStamp, model_conflict, stamp_table
from melodex.util.atomic import atomic_write

log = logging.getLogger(__name__)

DEFAULT_BATCH = 1000  # records per part file
_PART_RE = re.compile(r"^part-(\d{6,})(?:-(\d{6,}))?-[0-9a-f]{8}\.parquet$")  # part-FIRST[-LAST]-uuid
COMPACT_ROWS = 20_000  # compact() merges small parts into parts of up to this many tracks


@dataclass(frozen=True)
class TrackRecord:
    """One track as :meth:`LibraryStore.add` takes it.

    ``embedding`` [shape=(512,)] float; ``probabilities`` maps each label to a probability
    (mean over the file's segments). ``date`` is ISO ``YYYY`` or ``YYYY-MM-DD``; ``date_source``
    says where it came from. Fields left None are stored as missing, never guessed.
    """

    track_id: str
    path: str
    embedding: np.ndarray
    probabilities: dict[str, float]
    title: str | None = None
    artist: str | None = None
    artist_id: str | None = None
    album: str | None = None
    date: str | None = None
    date_source: str | None = None
    genre: str | None = None
    source: str = "tags"
    duration: float | None = None
    album_artist: str | None = None
    release_id: str | None = None  # tracks of one release share it (melodex.library.metadata.release_identity)
    artists: tuple[str, ...] | None = None  # every artist; ``artist`` is their display string
    genres: tuple[str, ...] | None = None  # every genre; ``genre`` is their display string


def path_key(path: str | Path) -> str:
    """The stable ``track_id`` of a file that has no catalogue id: a hash of its resolved path."""
    return "p" + hashlib.sha1(resolved_path(path).encode("utf-8", "surrogatepass")).hexdigest()[:16]


def resolved_path(path: str | Path) -> str:
    """The absolute, resolved form of ``path`` the store records; a URI other than ``file://``
    (``s3://bucket/a.mp3``) is kept as it is, and a ``file://`` URI is its local path."""
    local = local_path(path) if isinstance(path, str) else Path(path)
    return str(path) if local is None else str(local.expanduser().resolve())


class LibraryStore:
    """A directory (default ``melodex_outputs/library``) holding Parquet files.

    Nothing is created until the first write. Reads are cached and refreshed after ``add``.
    """

    def __init__(self, root: str | Path = DEFAULT_STORE):
        self.root = Path(root)
        self._cache: tuple[tuple[str, ...], Any] | None = None  # (part names, arrow table)

    # ---- layout -------------------------------------------------------------------------
    @property
    def parts_dir(self) -> Path:
        return self.root / "parts"

    def _all_parts(self) -> list[tuple[int, int, Path]]:
        """(first seq, last seq, path) of every part file, by first seq then widest range."""
        if not self.parts_dir.is_dir():
            return []
        found = []
        for path in self.parts_dir.iterdir():
            match = _PART_RE.match(path.name)
            if match:
                first = int(match.group(1))
                found.append((first, int(match.group(2) or first), path))
        return sorted(found, key=lambda item: (item[0], -item[1], item[2].name))

    def _part_files(self, *, superseded: bool = False) -> list[Path]:
        """The live parts in order; with ``superseded=True``, the ones a compacted part replaced
        (left behind only when a compaction was interrupted before it removed them)."""
        live, dead, covered = [], [], -1
        for first, last, path in self._all_parts():
            (dead if last <= covered else live).append(path)
            covered = max(covered, last)
        return dead if superseded else live

    def _table(self, columns: list[str] | None = None) -> pa.Table:
        """All parts as one Arrow table (label columns unified; missing ones are null)."""

        files = self._part_files()
        names = tuple(p.name for p in files)
        if columns is None and self._cache is not None and self._cache[0] == names:
            return self._cache[1]
        tables = []
        for part in files:
            try:
                if columns is None:
                    tables.append(pq.read_table(part))
                else:
                    schema = pq.read_schema(part)
                    tables.append(pq.read_table(part, columns=[c for c in columns if c in schema.names]))
            except (OSError, pa.ArrowException) as exc:
                raise StoreError(f"{part}: unreadable store part ({exc})") from exc
        if not tables:
            return empty_table(columns)
        try:
            table = tables[0] if len(tables) == 1 else pa.concat_tables(tables, promote_options="default")
        except pa.ArrowException as exc:
            raise StoreError(f"{self.root}: parts of incompatible formats ({exc}); re-index into a new store") from exc
        if columns is None:
            self._cache = (names, table)
        return table

    # ---- reading ------------------------------------------------------------------------
    def __len__(self) -> int:
        return sum(pq.ParquetFile(p).metadata.num_rows for p in self._part_files())

    def state(self) -> str:
        """A token of the stored rows as they are now: it changes whenever a part is added,
        rewritten, compacted or removed, so anything built from the store (the ANN index) can
        tell that it is stale. Names, sizes and mtimes of the live parts; no file is read."""
        digest = hashlib.sha256()
        for part in self._part_files():
            info = part.stat()
            digest.update(f"{part.name}:{info.st_size}:{info.st_mtime_ns}\n".encode())
        return digest.hexdigest()[:20]

    def keys(self) -> set[str]:
        """The ``track_id`` values present."""
        return set(self._table(["track_id"]).column("track_id").to_pylist())

    def paths(self) -> set[str]:
        """The (resolved) paths present, so an indexer can skip files before decoding them."""
        return set(self._table(["path"]).column("path").to_pylist())

    def labels(self) -> list[str]:
        """The genre labels that have a ``prob:<label>`` column, in column order."""
        return [c[len(PROB_PREFIX):] for c in self._table().column_names if c.startswith(PROB_PREFIX)]

    def tracks(self) -> pd.DataFrame:
        """One row per track; the RangeIndex is aligned with :meth:`embeddings`.

        Columns: track_id, path, title, artist, artist_id, album, date, date_source (strings,
        ``<NA>`` when unknown), year (Int64), genre (the true label, may be ``<NA>``),
        predicted_label, confidence (float), source, duration (float seconds), one float
        column ``prob:<label>`` per label, album_artist and release_id (strings), artists and
        genres (lists of strings, None when unknown; ``artist``/``genre`` are their display
        strings). A store written before a column existed reads it as missing.
        """

        table = self._table()
        table = table.drop_columns([c for c in ("embedding",) if c in table.column_names])
        mapping = {pa.string(): pd.StringDtype("pyarrow"), pa.large_string(): pd.StringDtype("pyarrow"),
                   pa.int64(): pd.Int64Dtype()}
        frame = table.to_pandas(types_mapper=mapping.get)
        for name in (c for c in RELEASE_COLUMNS + LIST_COLUMNS if c not in frame.columns):  # an older store
            frame[name] = pd.Series([None] * len(frame), dtype="string[pyarrow]" if name in RELEASE_COLUMNS else object)
        return frame.reset_index(drop=True)

    def embeddings(self) -> np.ndarray:
        """The embeddings [shape=(N, 512)] float32; row i belongs to ``tracks()`` row i."""

        table = self._table()
        if table.num_rows == 0 or "embedding" not in table.column_names:
            return np.zeros((0, 512), dtype=np.float32)
        column = table.column("embedding")
        dim = embedding_width(column.type)
        out = np.empty((table.num_rows, dim), dtype=np.float32)
        row = 0
        for chunk in column.chunks:
            n = len(chunk)
            if n and pa.types.is_fixed_size_list(chunk.type):  # stores written by early development builds
                out[row:row + n] = chunk.flatten().to_numpy(zero_copy_only=False).reshape(n, dim)
            elif n:  # each row's float32 bytes, back to back
                data = np.frombuffer(chunk.buffers()[1], dtype="<f4", count=(chunk.offset + n) * dim)
                out[row:row + n] = data[chunk.offset * dim:].reshape(n, dim)
            row += n
        return out

    # ---- writing ------------------------------------------------------------------------
    def add(self, records: Iterable[TrackRecord], *, batch_size: int = DEFAULT_BATCH,
            model: ModelStamp | None = None) -> int:
        """Append records whose ``track_id`` is not yet present; returns how many were added.

        Records are written in batches of ``batch_size``, one new part file per batch (written
        atomically), so an interruption loses at most the batch in flight; existing parts are
        never rewritten. ``model`` is the model that made the embeddings (recorded per row and in
        each part's metadata). A record whose embedding size differs from the store's, or a
        ``model`` other than the store's (see :meth:`check_model`), raises :class:`StoreError`
        before anything of its batch is written.
        """
        return sum(self.add_batches(records, batch_size=batch_size, model=model))

    def add_batches(self, records: Iterable[TrackRecord], *, batch_size: int = DEFAULT_BATCH,
                    model: ModelStamp | None = None) -> Iterator[int]:
        """Like :meth:`add`, but yields the number written after each part, for progress bars."""

        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        present = self.keys()
        dim = self._embedding_dim()
        batch: list[TrackRecord] = []
        checked = False
        for record in records:
            if record.track_id in present:
                continue
            if not checked:  # only once something would be written: a run that adds nothing never fails
                self.check_model(model, what=record.path)
                checked = True
            emb = np.asarray(record.embedding, dtype=np.float32).reshape(-1)
            if dim is None:
                dim = emb.size
            if emb.size != dim or emb.size == 0:
                raise StoreError(f"{record.path}: embedding has {emb.size} values; this store holds {dim}")
            if record.source not in SOURCES:
                raise StoreError(f"{record.path}: unknown source {record.source!r}; expected one of {SOURCES}")
            present.add(record.track_id)
            batch.append(record)
            if len(batch) >= batch_size:
                yield self._write_part(batch, dim, model)
                batch = []
        if batch:
            yield self._write_part(batch, dim, model)

    # ---- the model ----------------------------------------------------------------------
    def models(self) -> dict[str, ModelStamp]:
        """The models (by fingerprint) whose embeddings the store holds, from each part's metadata;
        empty for a new store or one made before Melodex recorded models."""
        found: dict[str, ModelStamp] = {}
        for part in self._part_files():
            stamp = ModelStamp.from_json((pq.read_schema(part).metadata or {}).get(MODEL_KEY))
            if stamp is not None:
                found.setdefault(stamp.fingerprint, stamp)
        return found

    def check_model(self, model: ModelStamp | None, *, what: str = "") -> None:
        """Raise :class:`StoreError` (one line naming both models and what to do) unless ``model``
        may add to this store: the store's own model, or any model for a store that records none."""
        problem = model_conflict(self.root, self.models(), model, what)
        if problem:
            raise StoreError(problem)

    def _embedding_dim(self) -> int | None:
        files = self._part_files()
        if not files:
            return None
        return embedding_width(pq.read_schema(files[0]).field("embedding").type)

    def _write_part(self, batch: list[TrackRecord], dim: int, model: ModelStamp | None = None) -> int:
        self._write_table(stamp_table(records_table(batch, dim), model, dim), self._next_name())
        log.debug("store: wrote a part (%d tracks)", len(batch))
        return len(batch)

    def _next_name(self, first: int | None = None) -> str:
        """A new part's name: the next sequence number, or ``first``-to-it to supersede every part."""
        seq = max((last for _, last, _ in self._all_parts()), default=-1) + 1
        if first is None:
            return f"part-{seq:06d}-{uuid.uuid4().hex[:8]}.parquet"
        return f"part-{first:06d}-{seq:06d}-{uuid.uuid4().hex[:8]}.parquet"

    def _write_table(self, table: pa.Table, name: str) -> None:
        write_part_file(table, self.parts_dir / name)
        self._cache = None

    def commit_part(self, staged: Path, present: set[str]) -> int:
        """Move a part written elsewhere (by :func:`write_part_file`, on a Ray worker) into the
        store under the next part name, in one rename; returns the tracks it adds.

        ``present`` (the store's track ids, kept up to date here) decides which rows are new: a
        part holding some already present is rewritten without them first. A part whose
        embeddings differ in size from the store's raises :class:`StoreError` and stays out."""
        schema = pq.read_schema(staged)
        dim, width = self._embedding_dim(), embedding_width(schema.field("embedding").type)
        if dim is not None and width != dim:
            raise StoreError(f"{staged}: embeddings have {width} values; this store holds {dim}")
        ids = pq.read_table(staged, columns=["track_id"]).column("track_id").to_pylist()
        seen = set(present)
        keep = [i for i, key in enumerate(ids) if not (key in seen or seen.add(key))]
        if not keep:
            staged.unlink()
            return 0
        if len(keep) < len(ids):
            write_part_file(pq.read_table(staged).take(keep), staged)
        self.parts_dir.mkdir(parents=True, exist_ok=True)
        os.replace(staged, self.parts_dir / self._next_name())
        present.update(ids)
        self._cache = None
        return len(keep)

    def part_files(self) -> list[Path]:
        """The live part files, in row order (for :mod:`melodex.library.updates`)."""
        return self._part_files()

    def rewrite_part(self, part: Path, table: pa.Table) -> None:
        """Replace one live part's rows with ``table`` (same rows, changed columns), atomically."""
        self._write_table(table, part.name)

    def replace_all(self, table: pa.Table) -> None:
        """Make ``table`` the store's only content: one part whose name supersedes every existing
        part is written atomically, then the old parts are removed (a kill in between leaves them
        ignored, and :meth:`compact` removes them)."""
        if not self._all_parts():
            self._write_table(table, self._next_name())
            return
        self._write_table(table, self._next_name(first=0))
        for stale in self._part_files(superseded=True):
            stale.unlink(missing_ok=True)

    def compact(self, *, target_rows: int = COMPACT_ROWS) -> int:
        """Merge runs of small consecutive parts into parts of up to ``target_rows`` tracks.

        Many small parts (``melodex index`` appends a few hundred tracks at a time) make loading
        slow, since every file has a fixed cost. The merged part is written first (atomically);
        its name carries the range of parts it replaces (``part-FIRST-LAST-...``), so a reader
        ignores the old parts even if the process dies before deleting them. Row order is kept.
        Returns the number of part files removed. Run it with no other writer on the store.
        """

        removed = 0
        for stale in self._part_files(superseded=True):
            stale.unlink(missing_ok=True)
            removed += 1
        live = set(self._part_files())
        sized = [(first, last, path, pq.ParquetFile(path).metadata.num_rows)
                 for first, last, path in self._all_parts() if path in live]
        for group in merge_groups(sized, target_rows):
            merged = pa.concat_tables([pq.read_table(path) for _, _, path in group], promote_options="default")
            self._write_table(merged, f"part-{group[0][0]:06d}-{group[-1][1]:06d}-{uuid.uuid4().hex[:8]}.parquet")
            for _, _, path in group:
                path.unlink(missing_ok=True)
                removed += 1
        self._cache = None
        return removed

    # ---- the map (melodex.library.store_map) ----------------------------------------------
    def save_coordinates(self, coords: pd.DataFrame, info: dict) -> None:
        """Save a 2-D map: ``coords`` has columns track_id, x, y; ``info`` (UMAP settings...) goes with it."""
        store_map.save_coordinates(self.root, coords, info)

    def coordinates(self) -> pd.DataFrame | None:
        """track_id, x, y of the saved map, or None when no map was saved."""
        return store_map.coordinates(self.root)

    def map_info(self) -> dict | None:
        """The info saved with the map, or None when no map was saved."""
        return store_map.map_info(self.root)


def write_part_file(table: pa.Table, path: Path) -> None:
    """Write one part (a table stamped by :func:`melodex.library.schema.stamp_table`) atomically:
    a crash leaves no half-written file under the final name."""
    with atomic_write(path, "wb") as handle:
        # metadata compresses well; the embedding column is stored plain, because decoding
        # compressed floats costs more load time than it saves disk (see the module docstring)
        codecs = {column: ("none" if column == "embedding" else "zstd") for column in table.column_names}
        pq.write_table(table, handle, compression=codecs)
