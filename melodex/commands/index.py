"""Add tracks to a library store, from audio files (run through a model) or an inference JSONL.

  melodex index --audio music/ --model training_outputs/latest
  melodex index --from-jsonl results.jsonl --fma-metadata data/fma_metadata
  melodex index --audio music/ --model M --manifest dates.csv --store my_library

Files already in the store (same path, or same FMA id) are skipped before anything is decoded,
so indexing a grown folder processes only the new files. Tracks are appended in batches as
they complete: a killed run loses at most the batch in flight (Ctrl-C writes it first, exit 130),
and a rerun adds the rest.
At the end of a run the small parts it wrote are merged (``LibraryStore.compact``).
Metadata comes from the files' tags, then FMA's tracks.csv (``--metadata``/``--fma-metadata``),
then a manifest CSV (``--manifest``), each overriding the one before; what no source states stays
missing. Exit status 1 when some files failed (they are listed).
"""

from __future__ import annotations

import argparse
import logging

from melodex.commands import EXIT_INTERRUPTED
from melodex.commands.options import (
    add_batch_size,
    add_device,
    add_model,
    add_num_workers,
    add_store,
    positive_int,
)
from melodex.constants import DEFAULT_PART_SIZE
from melodex.errors import MelodexError

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_store(parser)
    src = parser.add_argument_group("what to add (one of)")
    src.add_argument("--audio", nargs="+", metavar="PATH", help="audio files or folders (searched recursively); needs --model")
    src.add_argument("--from-jsonl", "--from_jsonl", dest="from_jsonl", metavar="FILE",
                     help="an inference JSONL written by 'melodex infer --format jsonl' (with embeddings)")
    add_model(src, required=False, purpose=" (with --audio)")
    meta = parser.add_argument_group("metadata")
    meta.add_argument("--metadata", metavar="TRACKS_CSV", help="FMA tracks.csv: artist, title, album, dates, genre")
    meta.add_argument("--fma-metadata", "--fma_metadata", dest="fma_metadata", metavar="DIR",
                      help="FMA metadata folder holding tracks.csv (alternative to --metadata)")
    meta.add_argument("--manifest", metavar="CSV", help="CSV path,artist,title,album,date,genre that supplies or overrides fields")
    meta.add_argument("--no-tags", dest="tags", action="store_false", help="do not read the files' own tags")
    run_group = parser.add_argument_group("running")
    add_device(run_group)
    run_group.add_argument("--full", action="store_true", help="analyse whole files (sliding segments), not the first 30 s")
    add_batch_size(run_group, default=8)
    add_num_workers(run_group, default=4, what="decoding worker processes (default: 4; 0 decodes in-process)")
    run_group.add_argument("--part-size", "--part_size", dest="part_size", type=positive_int, default=DEFAULT_PART_SIZE,
                           help=f"tracks per appended store part; a kill loses at most one (default {DEFAULT_PART_SIZE})")


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from melodex.inference.jsonl import iter_jsonl
    from melodex.inference.predictor import Predictor
    from melodex.library.indexing import (
        IndexSummary,
        MetadataSources,
        index_records,
        load_fma_tracks,
        new_audio_files,
        records_from_audio,
        records_from_jsonl,
    )
    from melodex.library.metadata import read_manifest
    from melodex.library.store import LibraryStore
    from melodex.util.interrupt import UntilInterrupted

    if bool(args.audio) == bool(args.from_jsonl):
        raise MelodexError("give either --audio (with --model) or --from-jsonl")
    if args.audio and not args.model:
        raise MelodexError("--audio needs --model (a checkpoint to embed the files with)")
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
    records = UntilInterrupted(records)  # Ctrl-C while embedding: write what is done, then stop
    try:
        summary.added = index_records(store, records, part_size=args.part_size, progress=bar)
    finally:
        bar.close()
    if records.interrupted:
        log.warning("interrupted: the %d track(s) embedded so far are kept in %s; run the same command "
                    "again to add the rest", summary.added, store.root)
        return EXIT_INTERRUPTED
    if summary.added:  # merge this run's small parts, so loading stays fast as the library grows
        log.debug("compacted the store: %d part file(s) merged", store.compact())
    summary.total = len(store)
    for name, reason in summary.failed:
        log.warning("failed: %s: %s", name, reason)
    log.info("indexed %d new track(s); %d already present; %d failed; the store at %s holds %d",
             summary.added, summary.skipped, len(summary.failed), store.root, summary.total)
    return 1 if summary.failed else 0
