"""Turning audio files or inference results into store records (``melodex index`` runs it).

Files already in the store (same path, or same FMA id) are filtered out before anything is
decoded (:func:`new_audio_files`); records are made from a :class:`~melodex.inference.predictor.Predictor`'s
results or from JSONL lines, with metadata merged from the files' tags, FMA's tracks.csv and a
manifest, each overriding the one before (:class:`MetadataSources`); :func:`index_records`
appends them to the store in parts, so an interrupted run loses at most the part in flight.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from melodex.audio.files import find_audio_files, find_audio_sources
from melodex.constants import DEFAULT_PART_SIZE
from melodex.library.metadata import (
    fma_tracks,
    merge,
    read_tags,
    release_identity,
    split_values,
    track_metadata,
)
from melodex.library.store import TrackRecord, path_key, resolved_path

log = logging.getLogger(__name__)

_FMA_STEM = re.compile(r"^\d{6}$")


@dataclass
class IndexSummary:
    """What one indexing run did."""

    added: int = 0
    skipped: int = 0  # already in the store
    present: list[str] = field(default_factory=list)  # the files met that were already stored
    failed: list[tuple[str, str]] = field(default_factory=list)  # (file, reason)
    total: int = 0  # tracks in the store afterwards


class MetadataSources:
    """Tags, FMA tracks and a manifest, combined per file (later sources override earlier ones)."""

    def __init__(self, fma_tracks: Iterable[Any] = (), manifest: dict[str, dict[str, str]] | None = None,
                 read_file_tags: bool = True):
        self.by_key: dict[str, Any] = {str(track.key): track for track in fma_tracks}
        self.manifest = manifest or {}
        self.read_file_tags = read_file_tags

    def fma_track(self, path: str | Path) -> Any | None:
        """The catalogue track of a file, found by its 6-digit FMA file name (``000002.mp3``)."""
        stem = Path(path).stem
        return self.by_key.get(stem) if _FMA_STEM.match(stem) else None

    def track_id(self, path: str | Path) -> str:
        """The store key of a file: its FMA id when the catalogue knows it, else a path hash."""

        track = self.fma_track(path)
        return str(track.key) if track is not None else path_key(path)

    def describe(self, path: str | Path) -> tuple[dict[str, str], str]:
        """(merged fields, source) for one file; source is fma, manifest, tags or inference."""

        tags = read_tags(path) if self.read_file_tags and Path(path).is_file() else {}
        track = self.fma_track(path)
        fma = track_metadata(track) if track is not None else {}
        manual = self.manifest.get(resolved_path(path), {})
        source = "fma" if track is not None else "manifest" if manual else "tags" if tags else "inference"
        return merge(tags, fma, manual), source


def make_record(path: str, probabilities: dict[str, float], embedding: Any, duration: float | None,
                sources: MetadataSources, *, stored: tuple[str, str] | None = None):
    """A :class:`~melodex.library.store.TrackRecord` for one analysed file; ``stored`` is the
    ``(track_id, resolved path)`` a stored track already has (kept, and not worked out again)."""

    fields, source = sources.describe(path)
    track_id, path = stored or (sources.track_id(path), resolved_path(path))
    return TrackRecord(
        track_id=track_id, path=path,
        embedding=np.asarray(embedding, dtype=np.float32), probabilities={k: float(v) for k, v in probabilities.items()},
        title=fields.get("title"), artist=fields.get("artist"), artist_id=fields.get("artist_id"),
        album=fields.get("album"), date=fields.get("date"), date_source=fields.get("date_source"),
        genre=fields.get("genre"), source=source, duration=duration, album_artist=fields.get("album_artist"),
        release_id=release_identity(fields), artists=_values(fields.get("artist")), genres=_values(fields.get("genre")),
    )


def _values(text: str | None) -> tuple[str, ...] | None:
    values = split_values(text)
    return None if values is None else tuple(values)


def records_from_jsonl(lines: Iterable[dict[str, Any]], sources: MetadataSources, known: set[str],
                       summary: IndexSummary) -> Iterator[Any]:
    """Track records for the JSONL lines not yet in the store; error lines go to ``summary.failed``."""

    for line in lines:
        name = str(line.get("audio_file", "?"))
        if line.get("error"):
            summary.failed.append((name, str(line["error"])))
            continue
        if _known(name, sources, known):
            summary.skipped += 1
            summary.present.append(name)
            continue
        probs = (line.get("global_prediction") or {}).get("all_probabilities")
        embedding = line.get("embedding")
        if not embedding or not isinstance(probs, dict):
            summary.failed.append((name, "no embedding or probabilities in the line "
                                         "(run 'melodex infer' with embeddings, in JSONL format)"))
            continue
        if not _utf8(name):
            summary.failed.append((name, NOT_UTF8))
            continue
        known.update({resolved_path(name), sources.track_id(name)})
        yield make_record(name, probs, embedding, line.get("duration"), sources)


NOT_UTF8 = "the file name is not valid UTF-8, and the store keeps paths as text; rename the file"


def _utf8(path: str) -> bool:
    """False for a name holding undecodable bytes (surrogate escapes), which Parquet cannot store."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _known(path: str, sources: MetadataSources, known: set[str]) -> bool:
    return resolved_path(path) in known or sources.track_id(path) in known


# ------------------------------------------------------------------------------- audio
def records_from_audio(predictor: Any, files: list[Path], sources: MetadataSources, summary: IndexSummary,
                       *, full: bool = False, progress: Any = None) -> Iterator[Any]:
    """Run ``predictor`` over ``files`` (already filtered to new ones) and yield track records.

    ``progress`` (a tqdm bar) advances once per analysed file, failed ones included."""
    for result in predictor.predict(files, full=full, embeddings=True):
        if progress is not None:
            progress.update(1)
        if result.error is not None or result.embedding is None or not _utf8(str(result.audio_file)):
            summary.failed.append((str(result.audio_file), result.error or ("no embedding" if result.embedding is None
                                                                            else NOT_UTF8)))
            continue
        probs = dict(zip(result.labels, (float(p) for p in result.probabilities)))
        yield make_record(str(result.audio_file), probs, result.embedding, result.duration, sources)


def new_audio_files(inputs: list[str], sources: MetadataSources, known: set[str],
                    summary: IndexSummary, *, uris: bool = False) -> list[Any]:
    """The audio files under ``inputs`` that the store does not hold yet (nothing is decoded);
    with ``uris``, URIs such as ``s3://bucket/music`` are listed too (as RemoteFiles)."""

    files = []
    for path in (find_audio_sources if uris else find_audio_files)(inputs, missing="keep"):
        if _known(str(path), sources, known):
            summary.skipped += 1
            summary.present.append(str(path))
        else:
            files.append(path)
    return files


def index_records(store: Any, records: Iterable[Any], *, part_size: int = DEFAULT_PART_SIZE,
                  progress: Any = None, model: Any = None) -> int:
    """Append ``records`` (embedded by ``model``, a ModelStamp or None when unknown) to ``store``
    in parts of ``part_size``; returns how many were added."""
    added = 0
    for count in store.add_batches(records, batch_size=part_size, model=model):
        added += count
        if progress is not None:
            progress.set_postfix(added=added)
    return added


def load_fma_tracks(tracks_csv: str | None, fma_dir: str | None) -> list[Any]:
    """FMA's catalogue from ``tracks.csv`` or the folder holding it (empty when neither is given)."""

    target = tracks_csv or fma_dir
    return fma_tracks(target) if target else []
