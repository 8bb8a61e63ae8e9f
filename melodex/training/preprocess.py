"""Filling the MFCC cache from a dataset with a pool of worker processes (``melodex preprocess``).

:func:`preprocess_dataset` decodes each track's first segment, computes its MFCC and writes it
to a :class:`~melodex.features.cache.FeatureCache`; finished tracks are skipped on a rerun, a
killed run never leaves a half-written entry that counts as done, and files that cannot be
decoded are recorded in the cache's failures log (retried with ``retry_failed``). One process
at a time may fill a cache (a POSIX record lock). :func:`extract_track` is the per-track step,
which training also uses for tracks the cache lacks.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import sys
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

try:
    import fcntl
except ImportError:  # not POSIX
    fcntl = None
from tqdm import tqdm

from melodex.audio.segments import read_first_segment
from melodex.errors import AudioLoadError, MelodexError
from melodex.features.cache import FAILURES_HEADER, INDEX_HEADER, FeatureCache
from melodex.features.mfcc import DEFAULT_FEATURES, FeatureConfig, compute_mfcc
from melodex.util.csvlog import AppendLog, Failure
from melodex.util.workers import start_worker, usable_cores

if TYPE_CHECKING:
    import numpy as np

    from melodex.datasets.base import Dataset, Track
    from melodex.features.mfcc import FeatureConfig
    from melodex.util.csvlog import Failure

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PreprocessSummary:
    """What one :func:`preprocess_dataset` call did.

    ``total`` tracks in the dataset; ``cached_before`` were complete already; ``written`` were
    extracted now; ``failures`` lists every track of the dataset that has no features (new
    failures and ones recorded by earlier runs and not retried).
    """

    cache_dir: Path
    total: int
    cached_before: int
    written: int
    failures: tuple[Failure, ...]
    failures_path: Path

    @property
    def ok(self) -> bool:
        return not self.failures


def preprocess_dataset(
    dataset: Dataset,
    cache_dir: str | Path,
    *,
    workers: int | None = None,
    progress: bool = True,
    retry_failed: bool = False,
    config: FeatureConfig | None = None,
) -> PreprocessSummary:
    """Write the first-segment MFCC of every track of ``dataset`` into ``cache_dir``.

    Parameters
    ----------
    dataset : Dataset
        The tracks; only ``key`` and ``path`` are used.
    cache_dir : str or Path
        The cache (created when missing). One made with other feature parameters is refused.
    workers : int, optional
        Worker processes; default all cores. 1 extracts in this process.
    progress : bool
        Show a tqdm bar on stderr.
    retry_failed : bool
        Try again tracks that ``failures.csv`` lists; by default they are skipped.
    config : FeatureConfig, optional
        Feature parameters; default :data:`~melodex.features.mfcc.DEFAULT_FEATURES`.

    Raises
    ------
    CacheMismatchError
        The cache holds features made with other parameters.
    MelodexError
        Another process is writing to the same cache.
    """

    cache = FeatureCache(cache_dir, config or DEFAULT_FEATURES)
    cache.initialise()
    with _exclusive(cache.root):
        cache.remove_stale_temporaries()
        old_failures = cache.failures()
        todo: list[Track] = []
        known_failed: list[Failure] = []
        cached_before = 0
        for track in dataset.tracks:
            old = old_failures.get(track.key)
            if cache.has(track.key):
                cached_before += 1
            elif old is not None and not retry_failed and old.path == str(track.path):
                known_failed.append(old)
            else:
                todo.append(track)
        if known_failed:
            log.info("skipping %d files that failed before (--retry_failed tries them again)", len(known_failed))
        new_failures: dict[str, Failure] = {}
        written: set[str] = set()
        bar = tqdm(total=len(todo), unit="track", desc="MFCC", disable=None if progress else True, dynamic_ncols=True)
        try:
            with AppendLog(cache.index_path, INDEX_HEADER) as index, \
                    AppendLog(cache.failures_path, FAILURES_HEADER) as failed:
                for key, path, seconds, reason in _extract_all(todo, cache, workers):
                    if reason is None:
                        index.append(key, f"{seconds:.6f}")
                        written.add(key)
                    else:
                        failure = Failure(key, path, reason)
                        new_failures[key] = failure
                        failed.append(key, path, reason)
                        log.warning("failed: %s: %s", path, reason)
                    bar.update(1)
        finally:
            bar.close()
            # One row per key, latest wins; keys that now have features are dropped.
            merged = {**old_failures, **new_failures}
            cache.write_failures(f for k, f in sorted(merged.items()) if k not in written)
    return PreprocessSummary(
        cache_dir=cache.root,
        total=len(dataset.tracks),
        cached_before=cached_before,
        written=len(written),
        failures=tuple(known_failed) + tuple(new_failures.values()),
        failures_path=cache.failures_path,
    )


def extract_track(path: str | Path, config: FeatureConfig) -> tuple[np.ndarray, float]:
    """Decode the first segment of ``path`` -> (MFCC ``(n_mfcc, n_frames)`` float32, seconds of audio).

    Raises AudioLoadError when the file cannot be decoded.
    """
    segment = read_first_segment(path, sr=config.sample_rate, window_seconds=config.segment_seconds)
    return compute_mfcc(segment.audio, config), segment.duration


def _extract_one(key: str, path: str, cache_dir: str, config_dict: dict) -> tuple[str, str, float, str | None]:
    """Worker body: extract and write one track; errors come back as a reason, never raised."""

    config = FeatureConfig.from_dict(config_dict)
    try:
        mfcc, seconds = extract_track(path, config)
        if not _finite(mfcc):
            return key, path, 0.0, "the MFCC holds NaN or infinity"
        FeatureCache(cache_dir, config).write(key, mfcc)
    except AudioLoadError as exc:
        return key, path, 0.0, exc.reason
    except MelodexError:  # OutputError: a full disk is fatal, not one file's fault
        raise
    except Exception as exc:  # a decoder bug on one odd file must not stop ten thousand
        return key, path, 0.0, f"{type(exc).__name__}: {exc}"
    return key, path, float(seconds), None


def _finite(array) -> bool:
    return bool(np.isfinite(array).all())


def _extract_all(tracks: Sequence[Track], cache, workers: int | None) -> Iterator[tuple[str, str, float, str | None]]:
    """Yield ``(key, path, seconds, reason)`` per track as workers finish, in any order."""
    jobs = [(t.key, str(t.path), str(cache.root), cache.config.to_dict()) for t in tracks]
    workers = max(1, min(workers or usable_cores(), len(jobs)))
    if workers == 1:
        for job in jobs:
            yield _extract_one(*job)
        return

    # Fork where it is safe (Linux): workers start at once and need no importable __main__
    # (notebooks, stdin); start_worker gives each one torch thread.
    method = "fork" if sys.platform.startswith("linux") else "spawn"
    context = multiprocessing.get_context(method)
    pending = iter(jobs)
    in_flight: set = set()
    with ProcessPoolExecutor(workers, mp_context=context, initializer=start_worker,
                             initargs=(os.getpid(), True)) as pool:
        try:
            for job in pending:  # keep a bounded window of submitted jobs
                in_flight.add(pool.submit(_extract_one, *job))
                if len(in_flight) >= 4 * workers:
                    done, in_flight = wait(in_flight, return_when=FIRST_COMPLETED)
                    for future in done:
                        yield future.result()
            for future in list(in_flight):
                in_flight.discard(future)
                yield future.result()
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise


@contextlib.contextmanager
def _exclusive(root: Path) -> Iterator[None]:
    """Hold an advisory lock on ``root/.lock`` so two runs never write one cache at once.

    A POSIX record lock (``lockf``) belongs to this process alone: forked workers do not
    inherit it, and it goes when the process dies, however it dies.
    """

    if fcntl is None:  # Windows: no advisory locks; run one preprocess at a time
        yield
        return
    with open(root / ".lock", "a") as handle:
        try:
            fcntl.lockf(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise MelodexError(f"{root}: another preprocess run is writing to this cache") from None
        try:
            yield
        finally:
            fcntl.lockf(handle, fcntl.LOCK_UN)
