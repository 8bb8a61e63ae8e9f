"""Indexing without a model: ``melodex index --features mfcc-stats``.

Each file becomes the 40-d vector of :mod:`melodex.features.stats` (mean and standard
deviation of each of the 20 MFCCs over its first 30 s; with ``--full``, the mean of that vector
over the file's windows), standardised per dimension. The same decoding workers and segments as a
model's inference are used (:class:`~melodex.inference.predictor.Predictor` runs
:class:`~melodex.features.stats.MfccStats` in place of the CNN), so this takes the time of
decoding plus MFCCs: minutes for a folder of a few thousand tracks on a laptop.

How the scaling is decided and kept
-----------------------------------
* The first run into an empty store decodes its first ``FIT_TRACKS`` (1000) new files, fits the
  per-dimension mean and standard deviation on their vectors (:class:`~melodex.features.stats.StatsScaler`),
  and only then writes anything. Every later vector, in this run and in later runs, is scaled with
  those numbers: adding tracks never moves the tracks already stored.
* The scaling and the feature parameters (:class:`~melodex.features.mfcc.FeatureConfig`, the
  statistics' version) are the "model" of such a store: its :class:`~melodex.library.schema.ModelStamp`
  is named ``mfcc-stats``, carries them in ``params`` (``{"kind", "version", "features",
  "scaler": {"mean", "std"}}``) and has the fingerprint ``mfcc-stats-<sha256 of params>``. So a
  store of MFCC statistics never mixes with CNN embeddings (``index --model`` on it stops with
  the usual one-line conflict, and ``--features mfcc-stats`` on a CNN store stops too), and a
  later run reads its scaling and feature parameters back from the store.
* A store started with very few tracks keeps that rough scaling; to refit, index the folder into
  a new store.

Such a store has no genre model: its ``predicted_label`` and ``confidence`` columns are empty
(null) and it has no ``prob:<label>`` columns; everything else (metadata, ``embedding`` of 40
float32, ``model_fingerprint``) is as for a model's store.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from melodex.constants import DECODE_WORKERS, SEGMENT_BATCH
from melodex.errors import StoreError
from melodex.features.mfcc import DEFAULT_FEATURES, FeatureConfig
from melodex.features.stats import MFCC_STATS, STATS_VERSION, MfccStats, StatsScaler
from melodex.inference.predictor import Predictor
from melodex.inference.results import FileResult
from melodex.library.schema import ModelStamp, model_conflict
from melodex.util.interrupt import UntilInterrupted

FIT_TRACKS = 1000  # the first run into an empty store fits the scaling on this many tracks


@dataclass(frozen=True)
class StatsCheckpoint:
    """What the inference stream needs of a checkpoint: the features to compute, and no labels."""

    feature_config: FeatureConfig
    labels: tuple[str, ...] = ()


def stats_stamp(config: FeatureConfig, scaler: StatsScaler) -> ModelStamp:
    """The store's model record for MFCC statistics with ``config`` scaled by ``scaler``."""
    params = {"kind": MFCC_STATS, "version": STATS_VERSION, "features": config.to_dict(), "scaler": scaler.to_dict()}
    digest = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:16]
    return ModelStamp(f"{MFCC_STATS}-{digest}", MFCC_STATS, (), params)


def is_stats_stamp(stamp: ModelStamp | None) -> bool:
    return stamp is not None and bool(stamp.params) and stamp.params.get("kind") == MFCC_STATS


def stored_stats(store: Any) -> tuple[FeatureConfig, StatsScaler, ModelStamp] | None:
    """The feature parameters, scaling and stamp of a store of MFCC statistics; None for an empty store.

    Raises :class:`StoreError` (one line) when the store holds something else: a model's
    embeddings, several models, or tracks of unknown origin."""
    held = store.models()
    if not held:
        if len(store):
            raise StoreError(f"{store.root}: holds {len(store)} track(s) of unknown origin (no model recorded); "
                             f"--features {MFCC_STATS} needs a store of its own: give another --store DIR")
        return None
    if len(held) > 1:
        raise StoreError(model_conflict(store.root, held, None) or f"{store.root}: holds several models")
    (stamp,) = held.values()
    if not is_stats_stamp(stamp):
        raise StoreError(f"{store.root}: holds embeddings of {stamp.describe()}; --features {MFCC_STATS} makes "
                         "other vectors, which never mix with a model's: index them into another store (--store DIR)")
    try:
        return FeatureConfig.from_dict(stamp.params["features"]), StatsScaler.from_dict(stamp.params["scaler"]), stamp
    except (KeyError, TypeError, ValueError) as exc:
        raise StoreError(f"{store.root}: its {MFCC_STATS} record is damaged ({exc}); index into a new store") from exc


class StatsEmbedder:
    """Embeds files with standardised MFCC statistics for a store, in the shape of a Predictor.

    ``predict(files, full=..., embeddings=True)`` yields :class:`FileResult` with no labels, empty
    probabilities and the scaled 40-d vector as ``embedding``. For an empty store, call
    :meth:`fit` first: it decodes the first ``fit_tracks`` files, fits the scaling and sets
    :attr:`stamp`; those results are then yielded first by :meth:`predict`, not decoded twice.
    """

    def __init__(self, store: Any, *, batch_size: int = SEGMENT_BATCH, num_workers: int = DECODE_WORKERS,
                 fit_tracks: int = FIT_TRACKS):
        stored = stored_stats(store)
        self.config = stored[0] if stored else DEFAULT_FEATURES
        self.scaler: StatsScaler | None = stored[1] if stored else None
        self.stamp: ModelStamp | None = stored[2] if stored else None
        self.fit_tracks = max(1, int(fit_tracks))
        self.interrupted = False  # a Ctrl-C arrived while fitting
        self._head: list[FileResult] = []
        self._fitted = 0  # how many of the files given to fit() it decoded
        self.predictor = Predictor((MfccStats(self.config), StatsCheckpoint(self.config)), device="cpu",
                                   batch_size=batch_size, num_workers=num_workers)

    def fit(self, files: list[Path], *, full: bool = False, progress: Any = None) -> None:
        """Fit the scaling on the first ``fit_tracks`` of ``files`` (nothing when the store has one);
        ``progress`` (a tqdm bar) advances once per decoded file. A Ctrl-C ends the pass early: the
        scaling is fitted on what was decoded, and :attr:`interrupted` is set."""
        if self.scaler is not None or not files:
            return
        stream = UntilInterrupted(self.predictor.predict(files[: self.fit_tracks], full=full, fingerprints=True))
        for result in stream:
            self._head.append(result)
            if progress is not None:
                progress.update(1)
        self.interrupted = stream.interrupted
        self._fitted = min(len(files), self.fit_tracks)
        vectors = [r.embedding for r in self._head if r.error is None and r.embedding is not None]
        if vectors:
            self.scaler = StatsScaler.fit(np.stack(vectors))
            self.stamp = stats_stamp(self.config, self.scaler)

    def predict(self, files: Iterable[str | Path], *, full: bool = False, embeddings: bool = True,
                **_options: Any) -> Iterator[FileResult]:
        head, self._head = self._head, []
        yield from (self._scaled(r) for r in head)
        if self.interrupted:
            return
        rest, self._fitted = list(files)[self._fitted:], 0  # fit() took the first files of the same list
        if rest:
            yield from (self._scaled(r) for r in self.predictor.predict(rest, full=full, fingerprints=True))

    def _scaled(self, result: FileResult) -> FileResult:
        if result.embedding is None or result.error is not None:
            return result
        if self.scaler is None:
            return replace(result, embedding=None, error="no scaling could be fitted (every file failed)")
        return replace(result, embedding=self.scaler.transform(result.embedding))


def stats_vectors(paths: Sequence[str | Path], *, full: bool = False, batch_size: int = SEGMENT_BATCH,
                  num_workers: int = DECODE_WORKERS) -> tuple[np.ndarray, np.ndarray, list[tuple[str, str]]]:
    """Standardised MFCC statistics of ``paths`` with a scaling fitted on all of them (a baseline
    for ``melodex evaluate``; nothing is stored).

    Returns ``(vectors [shape=(m, 40)] float32, rows [shape=(m,)]`` (the index in ``paths`` of each
    vector), ``failed`` ``[(path, reason)]``) for the files that could be decoded.
    """
    config = DEFAULT_FEATURES
    predictor = Predictor((MfccStats(config), StatsCheckpoint(config)), device="cpu", batch_size=batch_size,
                          num_workers=num_workers)
    where = {str(Path(p)): row for row, p in enumerate(paths)}
    vectors, rows, failed = [], [], []
    for result in predictor.predict(list(where), full=full):  # one result per file, in sorted order
        if result.error is not None or result.embedding is None:
            failed.append((result.audio_file, result.error or "no vector"))
        else:
            vectors.append(result.embedding)
            rows.append(where[result.audio_file])
    if not vectors:
        return np.zeros((0, 2 * config.n_mfcc), np.float32), np.zeros(0, np.int64), failed
    raw = np.stack(vectors)
    return StatsScaler.fit(raw).transform(raw), np.asarray(rows, dtype=np.int64), failed
