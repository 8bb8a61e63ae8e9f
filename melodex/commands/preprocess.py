"""Precompute every track's MFCC into a resumable cache, so training never decodes audio twice.

For each track of a dataset the first 30 s are decoded, cut to one segment and turned into an
MFCC of shape (20, 640), stored as <cache_dir>/<key[:3]>/<key>.npy; <cache_dir>/index.csv
gets a line "key,seconds" (seconds of real audio in the segment, 30.0 unless the file is
shorter) once the .npy is in place, and <cache_dir>/features.json records the feature
parameters: a cache made with other parameters is refused, never mixed. Files are processed
by a pool of worker processes with a progress bar.

Each entry is keyed by its source file's size, mtime and content digest as well
(<cache_dir>/sources.csv): a file replaced under the same id is recomputed and counted as
changed. Entries of a cache written before identities were recorded are recomputed once.

Run it again and it continues where it stopped: finished tracks are skipped, and a run
that was interrupted (even killed) never leaves a half-written file behind that counts as
done. Files that cannot be decoded are listed in <cache_dir>/failures.csv (key,path,reason)
and skipped on later runs unless --retry_failed is given; the exit status is then 1.

--engine ray runs the extraction as Ray tasks on a cluster (--address; see "On a cluster" in
the README): the tasks write the entries themselves, so the cache folder must be on storage
every node shares.
"""

from __future__ import annotations

import argparse
import logging

from melodex.commands.options import (
    add_dataset_arguments,
    add_engine,
    load_dataset_from_args,
    positive_int,
    uses_ray,
)

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_dataset_arguments(parser, cache_help="where the MFCCs are written (default: %(default)s)")
    parser.add_argument("--workers", type=positive_int, default=None, metavar="N",
                        help="worker processes (default: every core this process may use)")
    parser.add_argument("--retry_failed", "--retry-failed", action="store_true",
                        help="try again the files failures.csv lists (skipped by default)")
    add_engine(parser)


def run(args: argparse.Namespace) -> int:
    from melodex.training.preprocess import preprocess_dataset

    extractor = None
    if uses_ray(args):
        from melodex.engines.ray_engine import connect
        from melodex.engines.ray_preprocess import extract_on_ray

        connect(args.address)
        extractor = extract_on_ray
    dataset = load_dataset_from_args(args)  # the loader itself reports tracks it leaves out
    summary = preprocess_dataset(dataset, args.cache_dir, workers=args.workers, extractor=extractor,
                                 progress=not getattr(args, "quiet", False), retry_failed=args.retry_failed)
    done = summary.total - len(summary.failures)
    log.info("%d of %d tracks have MFCCs in %s (%d written now, %d cached before)",
             done, summary.total, summary.cache_dir, summary.written, summary.cached_before)
    if summary.changed:
        log.info("%d file%s changed since %s cached (other content or feature parameters): recomputed",
                 summary.changed, "" if summary.changed == 1 else "s", "it was" if summary.changed == 1 else "they were")
    if summary.legacy:
        log.info("%d entries of an older cache recorded no file identity: recomputed once, %d of them had gone stale",
                 summary.legacy, summary.legacy_stale)
    if summary.failures:
        n = len(summary.failures)
        log.warning("%d file%s failed; the list is in %s", n, "" if n == 1 else "s", summary.failures_path)
        return 1
    return 0
