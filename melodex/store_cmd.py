"""Add tracks to a library store, from audio files (run through a model) or an inference JSONL.

  melodex index --audio music/ --model training_outputs/latest
  melodex index --from-jsonl results.jsonl --fma-metadata data/fma_metadata
  melodex index --audio music/ --model M --manifest dates.csv --store my_library

Files already in the store (same path, or same FMA id) are skipped before anything is decoded,
so indexing a grown folder processes only the new files. Tracks are appended in batches as
they complete: an interrupted run loses at most the batch in flight, and a rerun adds the rest.
At the end of a run the small parts it wrote are merged (``LibraryStore.compact``).
Metadata comes from the files' tags, then FMA's tracks.csv (``--metadata``/``--fma-metadata``),
then a manifest CSV (``--manifest``), each overriding the one before; what no source states stays
missing. Exit status 1 when some files failed (they are listed).
"""

from __future__ import annotations

import argparse
import json
import logging
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import DatasetError, MelodexError

log = logging.getLogger(__name__)

DEFAULT_PART_SIZE = 256  # tracks per appended part file while indexing
_FMA_STEM = re.compile(r"^\d{6}$")


@dataclass
class IndexSummary:
    """What one indexing run did."""

    added: int = 0
    skipped: int = 0  # already in the store
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
        from .store import path_key

        track = self.fma_track(path)
        return str(track.key) if track is not None else path_key(path)

    def describe(self, path: str | Path) -> tuple[dict[str, str], str]:
        """(merged fields, source) for one file; source is fma, manifest, tags or inference."""
        from .metadata import merge, read_tags, track_metadata
        from .store import resolved_path

        tags = read_tags(path) if self.read_file_tags and Path(path).is_file() else {}
        track = self.fma_track(path)
        fma = track_metadata(track) if track is not None else {}
        manual = self.manifest.get(resolved_path(path), {})
        source = "fma" if track is not None else "manifest" if manual else "tags" if tags else "inference"
        return merge(tags, fma, manual), source


def make_record(path: str, probabilities: dict[str, float], embedding: Any, duration: float | None,
                sources: MetadataSources):
    """A :class:`~melodex.store.TrackRecord` for one analysed file."""
    import numpy as np

    from .store import TrackRecord, resolved_path

    fields, source = sources.describe(path)
    return TrackRecord(
        track_id=sources.track_id(path), path=resolved_path(path),
        embedding=np.asarray(embedding, dtype=np.float32), probabilities={k: float(v) for k, v in probabilities.items()},
        title=fields.get("title"), artist=fields.get("artist"), artist_id=fields.get("artist_id"),
        album=fields.get("album"), date=fields.get("date"), date_source=fields.get("date_source"),
        genre=fields.get("genre"), source=source, duration=duration,
    )


# ------------------------------------------------------------------------------- JSONL
def iter_jsonl(path: str | Path) -> Iterator[dict[str, Any]]:
    """The records of an inference JSONL file; an unparsable line becomes ``{"audio_file", "error"}``."""
    try:
        handle = open(path, encoding="utf-8")
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    with handle:
        for number, line in enumerate(handle, 1):
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


def records_from_jsonl(lines: Iterable[dict[str, Any]], sources: MetadataSources, known: set[str],
                       summary: IndexSummary) -> Iterator[Any]:
    """Track records for the JSONL lines not yet in the store; error lines go to ``summary.failed``."""
    from .store import resolved_path

    for line in lines:
        name = str(line.get("audio_file", "?"))
        if line.get("error"):
            summary.failed.append((name, str(line["error"])))
            continue
        if _known(name, sources, known):
            summary.skipped += 1
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
    from .store import resolved_path

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
                    summary: IndexSummary) -> list[Path]:
    """The audio files under ``inputs`` that the store does not hold yet (nothing is decoded)."""
    from .predict import collect_audio_files

    files = []
    for path in collect_audio_files(inputs):
        if _known(str(path), sources, known):
            summary.skipped += 1
        else:
            files.append(path)
    return files


def index_records(store: Any, records: Iterable[Any], *, part_size: int = DEFAULT_PART_SIZE,
                  progress: Any = None) -> int:
    """Append ``records`` to ``store`` in parts of ``part_size``; returns how many were added."""
    added = 0
    for count in store.add_batches(records, batch_size=part_size):
        added += count
        if progress is not None:
            progress.set_postfix(added=added)
    return added


# ------------------------------------------------------------------------------- command
def add_arguments(parser: argparse.ArgumentParser) -> None:
    from .store import DEFAULT_STORE

    parser.add_argument("--store", default=DEFAULT_STORE, metavar="DIR", help=f"library store folder (default {DEFAULT_STORE})")
    src = parser.add_argument_group("what to add (one of)")
    src.add_argument("--audio", nargs="+", metavar="PATH", help="audio files or folders (searched recursively); needs --model")
    src.add_argument("--from-jsonl", "--from_jsonl", dest="from_jsonl", metavar="FILE",
                     help="an inference JSONL written by 'melodex infer --format jsonl' (with embeddings)")
    src.add_argument("--model", help="checkpoint, run folder or training_outputs/latest (with --audio)")
    meta = parser.add_argument_group("metadata")
    meta.add_argument("--metadata", metavar="TRACKS_CSV", help="FMA tracks.csv: artist, title, album, dates, genre")
    meta.add_argument("--fma-metadata", "--fma_metadata", dest="fma_metadata", metavar="DIR",
                      help="FMA metadata folder holding tracks.csv (alternative to --metadata)")
    meta.add_argument("--manifest", metavar="CSV", help="CSV path,artist,title,album,date,genre that supplies or overrides fields")
    meta.add_argument("--no-tags", dest="tags", action="store_false", help="do not read the files' own tags")
    run_group = parser.add_argument_group("running")
    run_group.add_argument("--device", default="auto", help="auto (default), cpu or cuda")
    run_group.add_argument("--full", action="store_true", help="analyse whole files (sliding segments), not the first 30 s")
    run_group.add_argument("--batch-size", "--batch_size", dest="batch_size", type=int, default=8, help="segments per forward pass")
    run_group.add_argument("--num-workers", "--num_workers", dest="num_workers", type=int, default=4, help="decoding processes")
    run_group.add_argument("--part-size", "--part_size", dest="part_size", type=int, default=DEFAULT_PART_SIZE,
                           help=f"tracks per appended store part; a kill loses at most one (default {DEFAULT_PART_SIZE})")


def load_fma_tracks(tracks_csv: str | None, fma_dir: str | None) -> list[Any]:
    """FMA's catalogue from ``tracks.csv`` or the folder holding it (empty when neither is given)."""
    from .metadata import fma_tracks

    target = tracks_csv or fma_dir
    return fma_tracks(target) if target else []


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from .metadata import read_manifest
    from .store import LibraryStore

    if bool(args.audio) == bool(args.from_jsonl):
        raise MelodexError("give either --audio (with --model) or --from-jsonl")
    if args.audio and not args.model:
        raise MelodexError("--audio needs --model (a checkpoint to embed the files with)")
    if args.part_size < 1:
        raise MelodexError("--part-size must be at least 1")
    store = LibraryStore(args.store)
    sources = MetadataSources(load_fma_tracks(args.metadata, args.fma_metadata),
                              read_manifest(args.manifest) if args.manifest else None, read_file_tags=args.tags)
    known = store.keys() | store.paths()
    summary = IndexSummary()
    quiet = True if getattr(args, "quiet", False) else None
    if args.from_jsonl:
        bar = tqdm(iter_jsonl(args.from_jsonl), desc="index", unit="line", disable=quiet)
        records = records_from_jsonl(bar, sources, known, summary)
    else:
        from .predict import Predictor

        try:
            files = new_audio_files(args.audio, sources, known, summary)
        except FileNotFoundError as exc:
            raise MelodexError(f"{exc.filename or exc}: no such file or folder") from exc
        log.info("%d new audio file(s) to index (%d already in the store)", len(files), summary.skipped)
        predictor = Predictor(args.model, device=args.device, batch_size=args.batch_size, num_workers=args.num_workers) \
            if files else None
        bar = tqdm(total=len(files), desc="index", unit="file", disable=quiet)
        records = records_from_audio(predictor, files, sources, summary, full=args.full, progress=bar) \
            if files else iter(())
    try:
        summary.added = index_records(store, records, part_size=args.part_size, progress=bar)
    finally:
        bar.close()
    if summary.added:  # merge this run's small parts, so loading stays fast as the library grows
        log.debug("compacted the store: %d part file(s) merged", store.compact())
    summary.total = len(store)
    for name, reason in summary.failed:
        log.warning("failed: %s: %s", name, reason)
    log.info("indexed %d new track(s); %d already present; %d failed; the store at %s holds %d",
             summary.added, summary.skipped, len(summary.failed), store.root, summary.total)
    return 1 if summary.failed else 0

