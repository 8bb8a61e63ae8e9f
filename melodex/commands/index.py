"""Add tracks to a library store, from audio files (run through a model) or an inference JSONL.

  melodex index --audio music/ --model training_outputs/latest
  melodex index --from-jsonl results.jsonl --fma-metadata data/fma_metadata
  melodex index --audio music/ --model M --manifest dates.csv --store my_library
  melodex index --audio /mnt/music --model M --engine ray --address auto   # on a Ray cluster
  melodex index --audio s3://bucket/music --model M --engine ray --address auto --store /mnt/shared/library
  melodex index --audio music/ --features mfcc-stats --store my_mfcc_library   # no model needed

``--features mfcc-stats`` indexes without any model: each file becomes the mean and standard
deviation of each MFCC over its first 30 s (40 values), standardised with a scaling fitted on the
first 1000 tracks of the store's first run and kept in the store, so later additions are scaled
the same way. Such a store is its own "model" (``mfcc-stats-<fingerprint>``) and never mixes
with a CNN's embeddings; it has no genre predictions (its predicted_label and confidence are
empty, and it has no prob: columns).

Files already in the store (same path, or same FMA id) are skipped before anything is decoded,
so indexing a grown folder processes only the new files. Tracks are appended in batches as
they complete: a killed run loses at most the batch in flight (Ctrl-C writes it first, exit 130),
and a rerun adds the rest.
At the end of a run the small parts it wrote are merged (``LibraryStore.compact``).
Metadata comes from the files' tags, then FMA's tracks.csv (``--metadata``/``--fma-metadata``),
then a manifest CSV (``--manifest``), each overriding the one before; what no source states stays
missing. Metadata sources also update the tracks already stored that this run meets (no
decoding); the summary says how many changed.

A store holds one model's embeddings: ``--model`` must be the model that made them (its
fingerprint is recorded per track), or the run stops with one line naming both. ``--reembed``
re-embeds every stored track with the new model first; it is resumable. A store made before
fingerprints takes the first model that indexes into it, with a warning.
Exit status 1 when some files failed (they are listed).
"""

from __future__ import annotations

import argparse
import logging

from melodex.commands import EXIT_INTERRUPTED
from melodex.commands.options import (
    add_batch_size,
    add_device,
    add_engine,
    add_model,
    add_num_workers,
    add_store,
    make_predictor,
    positive_int,
)
from melodex.constants import DECODE_WORKERS, DEFAULT_PART_SIZE, SEGMENT_BATCH
from melodex.errors import MelodexError, WorkerError

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_store(parser)
    src = parser.add_argument_group("what to add (one of)")
    src.add_argument("--audio", nargs="+", metavar="PATH",
                     help="audio files or folders (searched recursively); with --engine ray also URIs "
                          "(s3://bucket/music, gs://, hdfs://); needs --model")
    src.add_argument("--from-jsonl", "--from_jsonl", dest="from_jsonl", metavar="FILE",
                     help="an inference JSONL written by 'melodex infer --format jsonl' (with embeddings)")
    add_model(src, required=False, purpose=" (with --audio)")
    src.add_argument("--features", choices=("mfcc-stats",),
                     help="with --audio instead of --model: index standardised MFCC statistics (no model, "
                          "no training; a store of its own)")
    meta = parser.add_argument_group("metadata")
    meta.add_argument("--metadata", metavar="TRACKS_CSV", help="FMA tracks.csv: artist, title, album, dates, genre")
    meta.add_argument("--fma-metadata", "--fma_metadata", dest="fma_metadata", metavar="DIR",
                      help="FMA metadata folder holding tracks.csv (alternative to --metadata)")
    meta.add_argument("--manifest", metavar="CSV", help="CSV path,artist,title,album,date,genre that supplies or overrides fields")
    meta.add_argument("--no-tags", dest="tags", action="store_false", help="do not read the files' own tags")
    run_group = parser.add_argument_group("running")
    add_device(run_group)
    run_group.add_argument("--full", action="store_true", help="analyse whole files (sliding segments), not the first 30 s")
    add_batch_size(run_group, default=SEGMENT_BATCH)
    add_num_workers(run_group, default=DECODE_WORKERS,
                    what=f"decoding worker processes (default: {DECODE_WORKERS}; 0 decodes in-process)")
    add_engine(run_group)
    run_group.add_argument("--reembed", action="store_true",
                           help="re-embed every stored track with --model (a store holds one model's embeddings); "
                                "resumable: a rerun after an interruption continues")
    run_group.add_argument("--drop-failed", "--drop_failed", dest="drop_failed", action="store_true",
                           help="with --reembed: remove stored tracks whose file cannot be re-embedded, "
                                "instead of keeping the store on its old model")
    run_group.add_argument("--part-size", "--part_size", dest="part_size", type=positive_int, default=DEFAULT_PART_SIZE,
                           help=f"tracks per appended store part; a kill loses at most one (default {DEFAULT_PART_SIZE})")


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from melodex.inference.jsonl import iter_jsonl
    from melodex.library.indexing import IndexSummary, new_audio_files, records_from_audio, records_from_jsonl
    from melodex.library.store import LibraryStore

    if bool(args.audio) == bool(args.from_jsonl) and not (args.reembed and not args.audio):
        raise MelodexError("give either --audio (with --model) or --from-jsonl (or --reembed alone)")
    if args.features:
        return _run_features(args)
    if (args.audio or args.reembed) and not args.model:
        raise MelodexError(f"{'--reembed' if args.reembed else '--audio'} needs --model (a checkpoint to embed the files with)")
    store = LibraryStore(args.store)
    ckpt, stamp = _model(args.model)
    if stamp is not None and not args.reembed:
        _adopt_or_check(store, stamp)
    sources = _sources(args)
    known = store.keys() | store.paths()
    summary = IndexSummary()
    quiet = True if getattr(args, "quiet", False) else None
    if args.reembed and not _reembed(args, store, ckpt, stamp, quiet):
        return 1
    if not (args.audio or args.from_jsonl):
        log.info("the store at %s holds %d track(s)", store.root, len(store))
        return 0
    if args.from_jsonl:
        bar = tqdm(iter_jsonl(args.from_jsonl), desc="index", unit="line", disable=quiet)
        return _add(args, store, records_from_jsonl(bar, sources, known, summary), bar, sources, summary, stamp)
    try:
        files = new_audio_files(args.audio, sources, known, summary, uris=args.engine == "ray")
    except FileNotFoundError as exc:
        raise MelodexError(f"{exc.filename or exc}: no such file or folder") from exc
    log.info("%d new audio file(s) to index (%d already in the store)", len(files), summary.skipped)
    bar = tqdm(total=len(files), desc="index", unit="file", disable=quiet)
    if files and args.engine == "ray":  # the workers write the parts; the driver commits them
        from melodex.library.staging import StagedRun

        staged = StagedRun(store, sources, stamp)
        rows = _predictor(args, ckpt).write(files, staged.writer, full=args.full, files_per_call=args.part_size)
        return _add(args, store, rows, bar, sources, summary, stamp, staged=staged)
    records = records_from_audio(_predictor(args, ckpt), files, sources, summary, full=args.full, progress=bar) \
        if files else iter(())
    return _add(args, store, records, bar, sources, summary, stamp)


def _add(args: argparse.Namespace, store, records, bar, sources, summary, stamp, *, fitting=None, staged=None) -> int:
    """Append ``records`` (made by ``stamp``), then compact, update metadata and report; the exit status.
    ``fitting``: the mfcc-stats embedder, whose scaling pass may have been interrupted; ``staged``:
    a StagedRun, whose parts (written by Ray workers) ``records`` (their rows) report."""
    from melodex.library.indexing import index_records
    from melodex.library.updates import update_metadata
    from melodex.util.interrupt import UntilInterrupted

    # Ctrl-C, or a decoding worker killed, while embedding: write what is done, then stop
    records = UntilInterrupted(records, ends=(WorkerError,))
    try:
        summary.added = index_records(store, records, part_size=args.part_size, progress=bar, model=stamp) \
            if staged is None else staged.commit(records, summary, progress=bar)
    finally:
        bar.close()
    if records.ended_by is not None:
        raise records.ended_by
    if records.interrupted or (fitting is not None and fitting.interrupted):
        log.warning("interrupted: the %d track(s) embedded so far are kept in %s; run the same command "
                    "again to add the rest", summary.added, store.root)
        return EXIT_INTERRUPTED
    if summary.added:  # merge this run's small parts, so loading stays fast as the library grows
        log.debug("compacted the store: %d part file(s) merged", store.compact())
    given = bool(args.metadata or args.fma_metadata or args.manifest)
    updated = update_metadata(store, sources, summary.present, only_modified=not given) \
        if summary.present and (args.tags or given) else 0
    summary.total = len(store)
    for name, reason in summary.failed:
        log.warning("failed: %s: %s", name, reason)
    log.info("indexed %d new track(s); %d already present (metadata updated for %d); %d failed; the store at %s "
             "holds %d", summary.added, summary.skipped, updated, len(summary.failed), store.root, summary.total)
    return 1 if summary.failed else 0


def _run_features(args: argparse.Namespace) -> int:
    """``--features mfcc-stats``: index MFCC statistics of ``--audio`` (no model)."""
    from tqdm import tqdm

    from melodex.library.indexing import IndexSummary, new_audio_files, records_from_audio
    from melodex.library.mfcc_stats import StatsEmbedder
    from melodex.library.store import LibraryStore

    if args.model or args.from_jsonl or args.reembed:
        given = "--model" if args.model else "--from-jsonl" if args.from_jsonl else "--reembed"
        raise MelodexError(f"--features {args.features} takes --audio only, not {given} (it uses no model)")
    store = LibraryStore(args.store)
    embedder = StatsEmbedder(store, batch_size=args.batch_size, num_workers=args.num_workers)  # refuses a model's store
    sources = _sources(args)
    summary = IndexSummary()
    try:
        files = new_audio_files(args.audio, sources, store.keys() | store.paths(), summary)
    except FileNotFoundError as exc:
        raise MelodexError(f"{exc.filename or exc}: no such file or folder") from exc
    log.info("%d new audio file(s) to index with %s (%d already in the store)", len(files), args.features,
             summary.skipped)
    quiet = True if getattr(args, "quiet", False) else None
    if embedder.scaler is None and files:  # an empty store: fit the scaling on its first tracks
        with tqdm(total=min(len(files), embedder.fit_tracks), desc="fit scaling", unit="file", disable=quiet) as fit:
            embedder.fit(files, full=args.full, progress=fit)
    bar = tqdm(total=len(files), desc="index", unit="file", disable=quiet)
    records = records_from_audio(embedder, files, sources, summary, full=args.full, progress=bar) if files else iter(())
    return _add(args, store, records, bar, sources, summary, embedder.stamp, fitting=embedder)


def _sources(args: argparse.Namespace):
    from melodex.library.indexing import MetadataSources, load_fma_tracks
    from melodex.library.metadata import read_manifest

    return MetadataSources(load_fma_tracks(args.metadata, args.fma_metadata),
                           read_manifest(args.manifest) if args.manifest else None, read_file_tags=args.tags)


def _model(path: str | None):
    """(checkpoint, ModelStamp) of ``--model``, or (None, None) without one."""
    if not path:
        return None, None
    from melodex.library.schema import ModelStamp
    from melodex.model.checkpoint import load_checkpoint, model_fingerprint

    ckpt = load_checkpoint(path)
    return ckpt, ModelStamp(model_fingerprint(ckpt), str(path), tuple(ckpt.labels))


def _predictor(args: argparse.Namespace, ckpt):
    return make_predictor(args, ckpt if args.engine == "ray" else (ckpt.build_model(), ckpt))


def _adopt_or_check(store, stamp) -> None:
    """Refuse another model than the store's (one line, before anything is decoded); a store made
    before Melodex recorded models takes the first model that indexes into it, with a warning."""
    from melodex.library.updates import adopt

    if not store.models() and len(store):
        count = adopt(store, stamp)
        log.warning("%s: no model is recorded for its %d track(s) (a store made before Melodex recorded models, "
                    "or indexed from a JSONL without --model); they are now taken to come from %s (if they do not, "
                    "run again with --reembed)", store.root, count, stamp.describe())
    store.check_model(stamp)


def _reembed(args: argparse.Namespace, store, ckpt, stamp, quiet) -> bool:
    """Re-embed the stored tracks with ``--model``; False (after listing the failures) when the
    store keeps its old model because some file could not be re-embedded."""
    from tqdm import tqdm

    from melodex.library.updates import reembed, stale_tracks

    predictor = _predictor(args, ckpt) if stale_tracks(store, stamp) else None
    with tqdm(total=0, desc="re-embed", unit="file", disable=quiet) as bar:
        result = reembed(store, predictor, stamp, part_size=args.part_size, full=args.full,
                         drop_failed=args.drop_failed, progress=bar)
    for name, reason in result.failed:
        log.warning("failed: %s: %s", name, reason)
    if not result.swapped:
        log.error("%s: %d stored track(s) could not be re-embedded (listed above); the store keeps its old model "
                  "and the %d staged track(s); fix the files and rerun, or add --drop-failed to remove them",
                  store.root, len(result.failed), result.stale - len(result.failed))
        return False
    if result.stale:
        log.info("re-embedded %d stored track(s) with %s%s", result.stale - len(result.failed), stamp.describe(),
                 f"; removed {len(result.failed)} that failed" if result.failed else "")
    return True
