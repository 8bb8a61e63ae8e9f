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
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

try:
    import fcntl
except ImportError:  # not POSIX
    fcntl = None
from tqdm import tqdm

from melodex.audio.segments import read_first_segment
from melodex.errors import AudioLoadError, MelodexError, WorkerError
from melodex.features.cache import FAILURES_HEADER, INDEX_HEADER, SOURCES_HEADER, FeatureCache, SourceIdentity
from melodex.features.mfcc import DEFAULT_FEATURES, FeatureConfig, compute_mfcc
from melodex.util.csvlog import AppendLog, Failure
from melodex.util.processes import WORKER_DIED
from melodex.util.workers import start_worker, usable_cores

if TYPE_CHECKING:
    from melodex.datasets.base import Dataset

log = logging.getLogger(__name__)

# (jobs, cache, workers) -> the result of every job, in any order: where the jobs run
Extractor = Callable[[Sequence["_Job"], FeatureCache, "int | None"], Iterator["_Done"]]


@dataclass(frozen=True)
class PreprocessSummary:
    """What one :func:`preprocess_dataset` call did.

    ``total`` tracks in the dataset; ``cached_before`` were complete and still match their file;
    ``written`` were extracted now, of which ``changed`` because their file changed since it was
    cached (other size, mtime and content, or other feature parameters) and ``legacy`` because the
    cache held no identity for them (written by an older Melodex), ``legacy_stale`` of which gave
    another MFCC than the cached one; ``failures`` lists every track of the dataset that has no
    features (new failures and ones recorded by earlier runs and not retried).
    """

    cache_dir: Path
    total: int
    cached_before: int
    written: int
    failures: tuple[Failure, ...]
    failures_path: Path
    changed: int = 0
    legacy: int = 0
    legacy_stale: int = 0

    @property
    def ok(self) -> bool:
        return not self.failures


@dataclass(frozen=True)
class _Job:
    """One track to extract. ``kind``: new, changed (stat or parameters), legacy (no identity).

    ``expect`` is the digest the cache recorded: a file whose content still has it is only
    re-stamped, not recomputed (a copy or ``touch`` changes the mtime, not the audio)."""

    key: str
    path: str
    kind: str
    expect: str = ""


@dataclass(frozen=True)
class _Done:
    """What a worker did with a :class:`_Job`: ``reason`` is None on success; ``unchanged``
    means the content matched ``expect`` and nothing was written; ``differs`` whether the new
    MFCC differs from the one it replaced."""

    job: _Job
    seconds: float = 0.0
    reason: str | None = None
    identity: SourceIdentity | None = None
    unchanged: bool = False
    differs: bool = True


def preprocess_dataset(
    dataset: Dataset,
    cache_dir: str | Path,
    *,
    workers: int | None = None,
    progress: bool = True,
    retry_failed: bool = False,
    config: FeatureConfig | None = None,
    extractor: Extractor | None = None,
) -> PreprocessSummary:
    """Write the first-segment MFCC of every track of ``dataset`` into ``cache_dir``.

    A track whose entry was made from another version of its file (see
    :meth:`FeatureCache.freshness`) is recomputed; one whose entry has no recorded identity
    (an older cache) too, once.

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
    extractor : callable, optional
        ``extractor(jobs, cache, workers)`` yields :func:`extract_job`'s result for every job, in
        any order, from wherever it runs them (``--engine ray``: Ray tasks, which write the
        entries themselves, so the cache must be on storage they share); default this
        machine's worker processes.

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
        todo, known_failed, cached_before = _plan(dataset, cache, old_failures, retry_failed)
        if known_failed:
            log.info("skipping %d files that failed before (--retry_failed tries them again)", len(known_failed))
        outcome = _Outcome()
        try:
            _run(todo, cache, workers, progress, outcome, extractor or _extract_all)
        finally:
            # One row per key, latest wins; keys that now have features are dropped.
            merged = {**old_failures, **outcome.failures}
            keys = {d.job.key for d in outcome.written}
            cache.write_failures(f for k, f in sorted(merged.items()) if k not in keys)
    written = outcome.written
    return PreprocessSummary(
        cache_dir=cache.root, total=len(dataset.tracks), cached_before=cached_before + outcome.restamped,
        written=len(written), failures=tuple(known_failed) + tuple(outcome.failures.values()),
        failures_path=cache.failures_path,
        changed=sum(d.job.kind == "changed" for d in written), legacy=sum(d.job.kind == "legacy" for d in written),
        legacy_stale=sum(d.job.kind == "legacy" and d.differs for d in written),
    )


@dataclass
class _Outcome:
    """What the workers did so far (filled while they run, read even after an interruption)."""

    written: list[_Done] = field(default_factory=list)
    failures: dict[str, Failure] = field(default_factory=dict)
    restamped: int = 0  # stat changed, content the same: only the identity was recorded again


def _run(todo: Sequence[_Job], cache: FeatureCache, workers: int | None, progress: bool, outcome: _Outcome,
         extractor: Extractor) -> None:
    """Run ``todo`` through the workers, appending each result to the cache's logs as it comes."""
    bar = tqdm(total=len(todo), unit="track", desc="MFCC", disable=None if progress else True, dynamic_ncols=True)
    try:
        with AppendLog(cache.index_path, INDEX_HEADER) as index, \
                AppendLog(cache.sources_path, SOURCES_HEADER) as sources, \
                AppendLog(cache.failures_path, FAILURES_HEADER) as failed:
            for done in extractor(todo, cache, workers):
                job = done.job
                if done.reason is None:
                    ident = done.identity
                    sources.append(job.key, ident.size, ident.mtime_ns, ident.digest, cache.fingerprint)
                    if done.unchanged:
                        outcome.restamped += 1
                    else:
                        index.append(job.key, f"{done.seconds:.6f}")
                        outcome.written.append(done)
                else:
                    outcome.failures[job.key] = Failure(job.key, job.path, done.reason)
                    failed.append(job.key, job.path, done.reason)
                    _forget_stale(cache, job)
                    log.warning("failed: %s: %s", job.path, done.reason)
                bar.update(1)
    finally:
        bar.close()


def _plan(dataset: Dataset, cache: FeatureCache, old_failures: dict[str, Failure],
          retry_failed: bool) -> tuple[list[_Job], list[Failure], int]:
    """(jobs to run, earlier failures skipped, tracks whose entry still matches their file)."""
    todo: list[_Job] = []
    known_failed: list[Failure] = []
    cached = 0
    for track in dataset.tracks:
        old = old_failures.get(track.key)
        state = cache.freshness(track.key, track.path)
        if state == "fresh":
            cached += 1
        elif state == "stat":
            todo.append(_Job(track.key, str(track.path), "changed", cache.identity(track.key).digest))
        elif state in ("legacy", "features"):
            todo.append(_Job(track.key, str(track.path), "legacy" if state == "legacy" else "changed"))
        elif old is not None and not retry_failed and old.path == str(track.path):
            known_failed.append(old)
        else:
            todo.append(_Job(track.key, str(track.path), "new"))
    return todo, known_failed, cached


def _forget_stale(cache: FeatureCache, job: _Job) -> None:
    """A file that changed and no longer decodes: its old MFCC must not stand in for it."""
    if job.kind != "new":
        with contextlib.suppress(OSError):
            cache.path_for(job.key).unlink()


def extract_track(path: str | Path, config: FeatureConfig) -> tuple[np.ndarray, float]:
    """Decode the first segment of ``path`` -> (MFCC ``(n_mfcc, n_frames)`` float32, seconds of audio).

    Raises AudioLoadError when the file cannot be decoded.
    """
    segment = read_first_segment(path, sr=config.sample_rate, window_seconds=config.segment_seconds)
    return compute_mfcc(segment.audio, config), segment.duration


def extract_job(job: _Job, cache_dir: str, config_dict: dict) -> _Done:
    """Worker body: identify, extract and write one track; errors come back as a reason, never raised."""

    config = FeatureConfig.from_dict(config_dict)
    try:
        identity = SourceIdentity.of(job.path)  # before decoding: a change meanwhile shows next run
        if job.expect and identity.digest == job.expect:
            return _Done(job, identity=identity, unchanged=True)
        mfcc, seconds = extract_track(job.path, config)
        if not _finite(mfcc):
            return _Done(job, reason="the MFCC holds NaN or infinity")
        cache = FeatureCache(cache_dir, config)
        differs = job.kind == "new" or _differs(cache, job.key, mfcc)
        cache.write(job.key, mfcc)
    except AudioLoadError as exc:
        return _Done(job, reason=exc.reason)
    except OSError as exc:  # the file vanished or cannot be read for hashing
        return _Done(job, reason=f"cannot read: {exc.strerror or exc}")
    except MelodexError:  # OutputError: a full disk is fatal, not one file's fault
        raise
    except Exception as exc:  # a decoder bug on one odd file must not stop ten thousand
        return _Done(job, reason=f"{type(exc).__name__}: {exc}")
    return _Done(job, seconds=float(seconds), identity=identity, differs=differs)


def _differs(cache: FeatureCache, key: str, mfcc: np.ndarray) -> bool:
    """True unless the entry being replaced holds (nearly) the same MFCC."""
    try:
        old = np.load(cache.path_for(key), allow_pickle=False)
    except (OSError, ValueError):
        return True
    return old.shape != mfcc.shape or not np.allclose(old, mfcc, rtol=0, atol=1e-3)


def _finite(array) -> bool:
    return bool(np.isfinite(array).all())


def _extract_all(jobs: Sequence[_Job], cache, workers: int | None) -> Iterator[_Done]:
    """Yield a :class:`_Done` per job as workers finish, in any order."""
    args = [(job, str(cache.root), cache.config.to_dict()) for job in jobs]
    workers = max(1, min(workers or usable_cores(), len(args)))
    if workers == 1:
        for arg in args:
            yield extract_job(*arg)
        return

    # Fork where it is safe (Linux): workers start at once and need no importable __main__
    # (notebooks, stdin); start_worker gives each one torch thread.
    method = "fork" if sys.platform.startswith("linux") else "spawn"
    context = multiprocessing.get_context(method)
    pending = iter(args)
    in_flight: set = set()
    with ProcessPoolExecutor(workers, mp_context=context, initializer=start_worker,
                             initargs=(os.getpid(), True)) as pool:
        try:
            for arg in pending:  # keep a bounded window of submitted jobs
                in_flight.add(pool.submit(extract_job, *arg))
                if len(in_flight) >= 4 * workers:
                    done, in_flight = wait(in_flight, return_when=FIRST_COMPLETED)
                    for future in done:
                        yield future.result()
            for future in list(in_flight):
                in_flight.discard(future)
                yield future.result()
        except BaseException as exc:
            pool.shutdown(wait=True, cancel_futures=True)
            if isinstance(exc, BrokenProcessPool):
                raise WorkerError(f"{WORKER_DIED}; what is cached so far stays, and the same command "
                                  "resumes") from None
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
