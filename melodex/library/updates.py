"""Changing tracks already in a store: their metadata, and their embeddings under a new model.

:func:`update_metadata` re-describes stored tracks from the metadata sources of this run (tags,
FMA's tracks.csv, a manifest) without decoding audio, and rewrites only the parts whose rows
changed. A field is replaced only by a stated value (a source that does not know a field never
clears it), and ``source`` only by a source at least as authoritative (fma > manifest > tags >
inference), so re-indexing without ``--fma-metadata`` keeps what FMA said. ``track_id`` never
changes (the saved map and outside references use it).

:func:`reembed` runs a new model over every stored track whose fingerprint is not the model's
and stages the new embeddings and probabilities under ``<store>/_reembed/<fingerprint>/`` in
Arrow files of ``part_size`` tracks, each written atomically. Only when every track has one does
it swap them in (:meth:`~melodex.library.store.LibraryStore.replace_all`, one atomic rename), so
readers see the old model's store or the new one, never a mix, and a killed run resumes from
what it staged. :func:`adopt` stamps a store made before fingerprints with the model indexing
into it.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from pyarrow import feather

from melodex.library.indexing import MetadataSources, make_record
from melodex.library.columns import PROB_PREFIX, embedding_width, records_table
from melodex.library.schema import FINGERPRINT_COLUMN, ModelStamp, stamp_table
from melodex.library.store import LibraryStore, TrackRecord, resolved_path
from melodex.util.atomic import atomic_write

STAGING = "_reembed"
MODEL_COLUMNS = ("predicted_label", "confidence", "duration", "embedding")  # what a new model changes
_KEPT = {"track_id", "path", FINGERPRINT_COLUMN, *MODEL_COLUMNS}  # never metadata
_RANK = {"inference": 0, "tags": 1, "manifest": 2, "fma": 3}


# ------------------------------------------------------------------------------- metadata
def update_metadata(store: LibraryStore, sources: MetadataSources, paths: Iterable[str], *,
                    only_modified: bool = False) -> int:
    """Refresh the metadata of the stored tracks at ``paths`` from ``sources``; returns the number
    of rows that changed. Parts are rewritten atomically, one at a time; a rerun finishes the rest.
    ``only_modified`` (when the files' own tags are the only source) looks only at files changed
    since their part was written, so re-indexing a grown folder does not re-read every tag."""

    wanted = {resolved_path(p) for p in paths}
    changed = 0
    for part in store.part_files():
        light = pq.read_table(part, columns=[c for c in pq.read_schema(part).names if c != "embedding"])
        since = part.stat().st_mtime_ns if only_modified else None
        rows = [i for i, p in enumerate(light.column("path").to_pylist()) if p in wanted and _newer(p, since)]
        if not rows:
            continue
        ids, where = light.column("track_id"), light.column("path")
        fresh = records_table([make_record(where[i].as_py(), {}, np.zeros(1), None, sources,
                                            stored=(ids[i].as_py(), where[i].as_py())) for i in rows], 1)
        light, count = _merge_metadata(light, fresh, rows)
        if count:
            table = pq.read_table(part)
            for name in light.column_names:
                if name in table.column_names:
                    table = table.set_column(table.schema.get_field_index(name), name, light.column(name))
                else:
                    table = table.append_column(name, light.column(name))
            store.rewrite_part(part, table)
            changed += count
    return changed


def _newer(path: str, since: int | None) -> bool:
    if since is None:
        return True
    try:
        return Path(path).stat().st_mtime_ns > since
    except OSError:
        return False


def _merge_metadata(table: pa.Table, fresh: pa.Table, rows: list[int]) -> tuple[pa.Table, int]:
    """``table`` with the stated values of ``fresh`` (one row per entry of ``rows``) put in."""

    touched: set[int] = set()
    stored_rank = table.column("source").to_pylist() if "source" in table.column_names else [None] * table.num_rows
    for name in fresh.column_names:
        if name in _KEPT or name.startswith(PROB_PREFIX):
            continue
        kind = fresh.schema.field(name).type
        values = table.column(name).to_pylist() if name in table.column_names else [None] * table.num_rows
        new = fresh.column(name).to_pylist()
        differs = False
        for j, i in enumerate(rows):
            value = new[j]
            if value is None or value == [] or value == values[i]:
                continue
            if name == "source" and _RANK.get(value, 0) < _RANK.get(stored_rank[i], 0):
                continue
            values[i] = value
            touched.add(i)
            differs = True
        if not differs:
            continue
        column = pa.array(values, kind)
        if name in table.column_names:
            table = table.set_column(table.schema.get_field_index(name), name, column)
        else:
            table = table.append_column(name, column)
    return table, len(touched)


# ------------------------------------------------------------------------------- models
@dataclass
class ReembedSummary:
    """What one :func:`reembed` run did."""

    stale: int = 0  # tracks not embedded by the new model when the run started
    embedded: int = 0  # tracks embedded by this run (staged ones from a killed run not counted)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (file, reason)
    swapped: bool = False  # the store now holds the new model's embeddings only


def stale_tracks(store: LibraryStore, model: ModelStamp) -> dict[str, str]:
    """path -> track_id of the stored tracks that ``model`` did not embed (unknown ones included)."""

    tables = [pq.read_table(p, columns=[c for c in ("track_id", "path", FINGERPRINT_COLUMN)
                                        if c in pq.read_schema(p).names]) for p in store.part_files()]
    out: dict[str, str] = {}
    for table in tables:
        prints = table.column(FINGERPRINT_COLUMN).to_pylist() if FINGERPRINT_COLUMN in table.column_names \
            else [None] * table.num_rows
        for tid, path, fingerprint in zip(table["track_id"].to_pylist(), table["path"].to_pylist(), prints):
            if fingerprint != model.fingerprint:
                out[path] = tid
    return out


def reembed(store: LibraryStore, predictor: Any, model: ModelStamp, *, part_size: int, full: bool = False,
            drop_failed: bool = False, progress: Any = None) -> ReembedSummary:
    """Re-embed every stored track ``model`` did not embed (see the module docstring).

    Tracks whose file fails are listed in the summary; the swap then waits for a rerun, unless
    ``drop_failed``, which removes those tracks from the store instead."""

    summary = ReembedSummary()
    staging = store.root / STAGING / model.fingerprint
    for other in (store.root / STAGING).glob("*"):
        if other != staging:  # left by a re-embedding with another model, never finished
            shutil.rmtree(other, ignore_errors=True)
    stale = stale_tracks(store, model)
    summary.stale = len(stale)
    if stale:
        staged = _staged_ids(staging)
        todo = sorted(p for p, tid in stale.items() if tid not in staged)
        if progress is not None:
            progress.total = len(todo)
            progress.refresh()
        summary.embedded = _embed_into(staging, predictor, todo, stale, model, part_size, full, summary, progress)
        if summary.failed and not drop_failed:
            return summary
        _swap(store, staging, model, dropped={stale[resolved_path(f)] for f, _ in summary.failed})
    summary.swapped = True
    shutil.rmtree(store.root / STAGING, ignore_errors=True)
    return summary


def _staged_ids(staging: Path) -> set[str]:
    ids: set[str] = set()
    for batch in sorted(staging.glob("batch-*.arrow")):
        ids.update(feather.read_table(batch, columns=["track_id"]).column("track_id").to_pylist())
    return ids


def _embed_into(staging: Path, predictor: Any, todo: list[str], ids: dict[str, str], model: ModelStamp,
                part_size: int, full: bool, summary: ReembedSummary, progress: Any) -> int:
    """Run ``predictor`` over ``todo`` and stage its results in batches; returns how many were staged."""

    batch: list[TrackRecord] = []
    done = 0
    for result in predictor.predict(todo, full=full, embeddings=True) if todo else ():
        if progress is not None:
            progress.update(1)
        if result.error is not None or result.embedding is None:
            summary.failed.append((str(result.audio_file), result.error or "no embedding"))
            continue
        path = resolved_path(result.audio_file)
        probs = dict(zip(result.labels, (float(p) for p in result.probabilities)))
        batch.append(TrackRecord(ids[path], path, result.embedding, probs, duration=result.duration))
        if len(batch) >= part_size:
            done += _stage(staging, batch, model)
            batch = []
    if batch:
        done += _stage(staging, batch, model)
    return done


def _stage(staging: Path, batch: list[TrackRecord], model: ModelStamp) -> int:
    dim = np.asarray(batch[0].embedding).size
    table = records_table(batch, dim)
    keep = ["track_id", *MODEL_COLUMNS, *(c for c in table.column_names if c.startswith(PROB_PREFIX))]
    table = stamp_table(table.select(keep), model, dim)
    with atomic_write(staging / f"batch-{uuid.uuid4().hex}.arrow", "wb") as handle:
        feather.write_feather(table, handle, compression="uncompressed")
    return len(batch)


def _swap(store: LibraryStore, staging: Path, model: ModelStamp, dropped: set[str]) -> None:
    """Put the staged columns in place of the old model's, in the stored row order, in one part.
    Rows the model had already embedded (not stale, so not staged) keep their own columns."""

    old = pa.concat_tables([pq.read_table(p) for p in store.part_files()], promote_options="default")
    staged = [feather.read_table(b) for b in sorted(staging.glob("batch-*.arrow"))]
    keep = [i for i, tid in enumerate(old.column("track_id").to_pylist()) if tid not in dropped]
    old = old.take(pa.array(keep, pa.int64()))
    staged_ids = {tid for table in staged for tid in table.column("track_id").to_pylist()}
    own = old.filter(pa.array([tid not in staged_ids for tid in old.column("track_id").to_pylist()]))
    labels = {PROB_PREFIX + label for label in model.labels}
    own = own.select([c for c in own.column_names if c in _KEPT and c != "path" or c in labels])
    pieces = [*staged, own] if own.num_rows else staged
    if not pieces:  # every track failed and was dropped
        store.replace_all(stamp_table(old.slice(0, 0), model, embedding_width(old.schema.field("embedding").type)))
        return
    new = pa.concat_tables([t.replace_schema_metadata(None) for t in pieces], promote_options="default")
    where = {tid: i for i, tid in enumerate(new.column("track_id").to_pylist())}
    new = new.take(pa.array([where[tid] for tid in old.column("track_id").to_pylist()], pa.int64()))
    columns: dict[str, pa.ChunkedArray] = {}
    for name in old.column_names:
        if name.startswith(PROB_PREFIX) or name in (FINGERPRINT_COLUMN, "embedding"):
            continue
        columns[name] = new.column(name) if name in MODEL_COLUMNS else old.column(name)
    for name in new.column_names:
        if name.startswith(PROB_PREFIX):
            columns[name] = new.column(name)
    columns["embedding"] = new.column("embedding")
    store.replace_all(stamp_table(pa.table(columns), model, embedding_width(new.schema.field("embedding").type)))


def adopt(store: LibraryStore, model: ModelStamp) -> int:
    """Stamp the rows of a store made before fingerprints with ``model``; returns how many."""

    count = 0
    for part in store.part_files():
        table = pq.read_table(part)
        if FINGERPRINT_COLUMN in table.column_names and table.column(FINGERPRINT_COLUMN).null_count == 0:
            continue
        store.rewrite_part(part, stamp_table(table, model, embedding_width(table.schema.field("embedding").type)))
        count += table.num_rows
    return count
