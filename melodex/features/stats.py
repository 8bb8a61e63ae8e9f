"""MFCC statistics: a segment summarised by the mean and standard deviation of each coefficient.

The no-training baseline (``melodex index --features mfcc-stats``): with the default
:class:`~melodex.features.mfcc.FeatureConfig` (20 MFCCs) a segment becomes a 40-d vector
``[mean_0 .. mean_19, std_0 .. std_19]`` (population standard deviation over the segment's
frames). Raw coefficients differ in scale by two orders of magnitude (``mean_0`` is around
-200, the upper coefficients' deviations around 5), so vectors are standardised per dimension
with a :class:`StatsScaler` before any distance is taken. The scaler is fitted once, on the
first tracks a store receives, and then kept with the store (see
:mod:`melodex.library.mfcc_stats`), so that later additions are scaled the same way.

:class:`MfccStats` is a :class:`torch.nn.Module` with the ``embed_and_classify`` method of the
CNN, so the inference stream (decoding workers, segments, per-file means) runs it unchanged;
it has no classes, so its "logits" have zero columns.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from melodex.features.mfcc import DEFAULT_FEATURES, FeatureConfig

MFCC_STATS = "mfcc-stats"  # the name of these features as --features spells it
STATS_VERSION = 1  # bump when the vector's definition changes: it is part of the fingerprint
MIN_STD = 1e-6  # a dimension whose fitted deviation is below this is only centred, not scaled


def mfcc_stats(mfcc: np.ndarray) -> np.ndarray:
    """Mean and standard deviation of each coefficient over time.

    Parameters
    ----------
    mfcc : np.ndarray [shape=(..., n_mfcc, n_frames)]

    Returns
    -------
    np.ndarray [shape=(..., 2 * n_mfcc), dtype=float32]
        The means, then the (population) standard deviations.
    """
    mfcc = np.asarray(mfcc, dtype=np.float64)
    return np.concatenate([mfcc.mean(axis=-1), mfcc.std(axis=-1)], axis=-1).astype(np.float32)


class MfccStats(torch.nn.Module):
    """``(batch, n_mfcc, n_frames)`` MFCCs -> ``(batch, 2 * n_mfcc)`` statistics (unscaled)."""

    def __init__(self, config: FeatureConfig = DEFAULT_FEATURES):
        super().__init__()
        self.config = config

    def forward(self, mfcc: torch.Tensor) -> torch.Tensor:
        x = mfcc.double()
        return torch.cat([x.mean(dim=-1), x.std(dim=-1, unbiased=False)], dim=-1).float()

    def embed_and_classify(self, mfcc: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(statistics, logits with zero columns): the CNN's interface, for the inference stream."""
        stats = self.forward(mfcc)
        return stats, stats.new_zeros((stats.shape[0], 0))


@dataclass(frozen=True)
class StatsScaler:
    """Per-dimension standardisation ``(x - mean) / std``; ``mean`` and ``std`` are tuples of floats."""

    mean: tuple[float, ...]
    std: tuple[float, ...]

    @classmethod
    def fit(cls, vectors: np.ndarray) -> StatsScaler:
        """Fit on ``vectors`` [shape=(n, dim)], n >= 1. A dimension that does not vary (or n == 1)
        keeps std 1, so it is centred but not blown up."""
        x = np.asarray(vectors, dtype=np.float64)
        if x.ndim != 2 or len(x) == 0:
            raise ValueError("StatsScaler.fit needs at least one vector, shape (n, dim)")
        std = x.std(axis=0)
        std = np.where(std < MIN_STD, 1.0, std)
        return cls(tuple(float(v) for v in x.mean(axis=0)), tuple(float(v) for v in std))

    def transform(self, vectors: np.ndarray) -> np.ndarray:
        """``vectors`` [shape=(..., dim)] standardised, float32; a ValueError on a size mismatch."""
        x = np.asarray(vectors, dtype=np.float64)
        if x.shape[-1] != len(self.mean):
            raise ValueError(f"vectors have {x.shape[-1]} values; this scaler was fitted on {len(self.mean)}")
        return ((x - np.asarray(self.mean)) / np.asarray(self.std)).astype(np.float32)

    def to_dict(self) -> dict[str, list[float]]:
        return {"mean": list(self.mean), "std": list(self.std)}

    @classmethod
    def from_dict(cls, data: dict) -> StatsScaler:
        mean, std = tuple(float(v) for v in data["mean"]), tuple(float(v) for v in data["std"])
        if len(mean) != len(std) or not mean or min(std) <= 0:
            raise ValueError("a scaler needs equally long, non-empty mean and positive std lists")
        return cls(mean, std)
