"""Store parts written on a cluster's nodes, then committed by the command that started the run.

``melodex index --engine ray`` does not bring the embeddings back to the machine running the
command: :class:`PartWriter` is the sink of
:meth:`RayPredictor.write <melodex.engines.ray_engine.RayPredictor.write>`, and each write task
turns its files' results into store records (metadata from tags, FMA's catalogue and the
manifest, exactly as :func:`~melodex.library.indexing.records_from_audio` does for the local
engine) and writes them as one part, with the store's schema, model stamp and embedding
metadata, under ``<store>/_staging/<run>/`` (atomically, and named ``*.parquet.staged`` so no
reader of the store takes it for a part). Only a small row per file comes back.

:class:`StagedRun` commits each part the moment a row reports it: one rename into ``parts/``
under the store's next part name (:meth:`LibraryStore.commit_part
<melodex.library.store.LibraryStore.commit_part>`), so a crash leaves committed parts complete and
staged ones invisible. Staged parts never reported (a task retried after its node died) and
whatever a killed run left are removed; their files are simply done again by the next run, whose
resume skips what was committed. The store must sit on storage every node writes (NFS, a shared
disk), as the MFCC cache must for ``preprocess --engine ray``; and, as for compaction, one run
writes to a store at a time (a new run clears ``_staging``).
"""

from __future__ import annotations

import logging
import shutil
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from melodex.errors import MelodexError, OutputError, StoreError
from melodex.library.columns import records_table
from melodex.library.indexing import IndexSummary, MetadataSources, records_from_audio
from melodex.library.schema import ModelStamp, stamp_table
from melodex.library.store import LibraryStore, write_part_file

log = logging.getLogger(__name__)

STAGING = "_staging"
STAGED_SUFFIX = ".parquet.staged"


class _Replay:
    """A "predictor" that yields results already made, so records_from_audio can take them."""

    def __init__(self, results: list[Any]):
        self.results = results

    def predict(self, files: Any, **_: Any) -> Iterator[Any]:
        return iter(self.results)


class PartWriter:
    """FileResults -> store records -> one staged part; returns one summary row per result:
    ``{"file", "error", "part"}`` (``part``: the staged file's name, empty when nothing was
    written for the file, ``error``: why it failed, as the local engine says it)."""

    def __init__(self, folder: Path, sources: MetadataSources, model: ModelStamp | None):
        self.folder = Path(folder)
        self.sources = sources
        self.model = model

    def __call__(self, results: list[Any]) -> list[dict[str, str]]:
        summary = IndexSummary()
        records, seen = [], set()
        for record in records_from_audio(_Replay(results), [], self.sources, summary):
            if record.track_id not in seen:  # the same catalogue id twice: the first one counts, as in add()
                seen.add(record.track_id)
                records.append(record)
        name, fatal = "", ""
        if records:
            dim = len(records[0].embedding)
            name = f"{uuid.uuid4().hex}{STAGED_SUFFIX}"
            try:
                write_part_file(stamp_table(records_table(records, dim), self.model, dim), self.folder / name)
            except MelodexError as exc:  # a full disk, no write permission: the run stops, in one line
                fatal = str(exc)
        failed = dict(summary.failed)
        return [{"file": str(r.audio_file), "error": failed.get(str(r.audio_file), ""),
                 "part": "" if str(r.audio_file) in failed else name, "fatal": fatal} for r in results]


class StagedRun:
    """One run's staging folder under ``<store>/_staging/``, its :attr:`writer`, and the commits."""

    def __init__(self, store: LibraryStore, sources: MetadataSources, model: ModelStamp | None):
        self.store = store
        stale = store.root / STAGING
        if stale.is_dir():  # a killed run's leftovers: never committed, so never part of the store
            log.debug("removing %s, left by an interrupted run", stale)
            shutil.rmtree(stale, ignore_errors=True)
        self.folder = stale / uuid.uuid4().hex[:12]
        self.folder.mkdir(parents=True)
        self.writer = PartWriter(self.folder, sources, model)

    def commit(self, rows: Iterable[dict[str, str]], summary: IndexSummary, *, progress: Any = None) -> int:
        """Take the writers' rows as they come: failures go to ``summary.failed``, each reported
        part is committed once; returns the tracks added. The staging folder goes at the end."""
        present = self.store.keys()
        committed: set[str] = set()
        added = 0
        try:
            for row in rows:
                if progress is not None:
                    progress.update(1)
                if row["fatal"]:
                    raise OutputError(row["fatal"])
                if row["error"]:
                    summary.failed.append((row["file"], row["error"]))
                elif row["part"] and row["part"] not in committed:
                    committed.add(row["part"])
                    added += self.store.commit_part(self._staged(row["part"]), present)
                    if progress is not None:
                        progress.set_postfix(added=added)
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)
            try:
                self.folder.parent.rmdir()
            except OSError:
                pass
        return added

    def _staged(self, name: str) -> Path:
        path = self.folder / name
        if not path.is_file():
            raise StoreError(f"{self.store.root}: a part a Ray worker wrote is not in {self.folder}; --store must be "
                             "a folder every node of the cluster writes (shared storage, such as NFS)")
        return path
