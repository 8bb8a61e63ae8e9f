"""TODO docstring."""

from __future__ import annotations

import argparse
import logging

from melodex.commands.options import add_dataset_arguments, load_dataset_from_args
from melodex.training.preprocess import preprocess_dataset
from melodex.util.workers import usable_cores

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_dataset_arguments(parser, cache_help="where the MFCCs are written (default: %(default)s)")
    parser.add_argument("--workers", type=int, default=None, metavar="N",
                        help="worker processes (default: all %d cores)" % usable_cores())
    parser.add_argument("--retry_failed", "--retry-failed", action="store_true",
                        help="try again the files failures.csv lists (skipped by default)")


def run(args: argparse.Namespace) -> int:
    dataset = load_dataset_from_args(args)  # the loader itself reports tracks it leaves out
    summary = preprocess_dataset(dataset, args.cache_dir, workers=args.workers,
                                 progress=not getattr(args, "quiet", False), retry_failed=args.retry_failed)
    done = summary.total - len(summary.failures)
    log.info("%d of %d tracks have MFCCs in %s (%d written now, %d cached before)",
             done, summary.total, summary.cache_dir, summary.written, summary.cached_before)
    if summary.failures:
        n = len(summary.failures)
        log.warning("%d file%s failed; the list is in %s", n, "" if n == 1 else "s", summary.failures_path)
        return 1
    return 0
