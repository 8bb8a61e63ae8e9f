"""Feeding MFCCs to training: from the precomputed cache when it has them, else decoded on the fly.

:class:`MfccDataset` is a torch ``Dataset`` over a list of tracks. Each item is looked up in a
:class:`~melodex.features.cache.FeatureCache` first; a track the cache lacks is decoded and its first
segment turned into an MFCC in the ``DataLoader`` worker. A file that cannot be decoded does
not raise: the item carries the reason, :func:`collate` leaves it out of the batch and the
training loop warns once per file.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from melodex.datasets.base import Track
from melodex.errors import AudioLoadError, CacheMismatchError
from melodex.features.cache import FeatureCache
from melodex.features.mfcc import FeatureConfig
from melodex.training.preprocess import extract_track

log = logging.getLogger(__name__)


def open_cache(cache_dir, config: FeatureConfig) -> FeatureCache | None:
    """The cache at ``cache_dir`` when it exists and matches ``config``, else None (logged)."""
    if cache_dir is None:
        return None
    cache = FeatureCache(cache_dir, config)
    if not cache.exists():
        log.info("no MFCC cache at %s: decoding audio every epoch (run 'melodex preprocess' to decode once)", cache_dir)
        return None
    try:
        cache.check()
    except CacheMismatchError as exc:
        log.warning("not using the MFCC cache: %s; decoding audio instead", exc)
        return None
    return cache


class MfccDataset(torch.utils.data.Dataset):
    """Items ``(index, mfcc or None, label index, failure reason or None)``.

    ``mfcc`` is a float32 tensor of shape ``(n_mfcc, n_frames)``.
    """

    def __init__(self, tracks: Sequence[Track], label_index: dict[str, int], config: FeatureConfig,
                 cache: FeatureCache | None = None):
        self.tracks = list(tracks)
        self.targets = [label_index.get(t.label, -1) for t in self.tracks]  # -1: no label (self-supervised)
        self.config = config
        self.cache = cache

    def __len__(self) -> int:
        return len(self.tracks)

    def cached_fraction(self) -> float:
        """The share of tracks whose cached MFCC stands for the file as it is now; warns about
        entries that no longer do (those tracks are decoded again while training)."""
        if not self.tracks or self.cache is None:
            return 0.0
        fresh = [self.cache.has(t.key, t.path) for t in self.tracks]
        stale = sum(not ok and self.cache.has(t.key) for ok, t in zip(fresh, self.tracks))
        if stale:
            log.warning("%d cached MFCC(s) in %s no longer match their files (replaced since, or cached before "
                        "Melodex recorded file identities): those tracks are decoded while training; "
                        "'melodex preprocess' with the same --cache_dir refreshes them", stale, self.cache.root)
        return sum(fresh) / len(self.tracks)

    def __getitem__(self, index: int):
        track = self.tracks[index]
        # an entry counts only while it was made from the file as it is now: a replaced file is decoded
        mfcc = self.cache.get(track.key, track.path) if self.cache is not None else None
        if mfcc is None:
            try:
                mfcc, _ = extract_track(track.path, self.config)
            except AudioLoadError as exc:
                return index, None, self.targets[index], str(exc)
            except Exception as exc:  # one odd file must never stop training
                return index, None, self.targets[index], f"{track.path}: {type(exc).__name__}: {exc}"
        return index, torch.from_numpy(np.ascontiguousarray(mfcc)), self.targets[index], None


@dataclass
class Batch:
    """The loadable items of one batch: ``x`` (B, n_mfcc, n_frames), ``y`` (B,), and the failures."""

    indices: torch.Tensor
    x: torch.Tensor
    y: torch.Tensor
    failures: list[tuple[int, str]]

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def pin_memory(self) -> Batch:
        """Called by a DataLoader with ``pin_memory=True`` (CUDA): page-locked copies for fast transfer."""
        return Batch(self.indices, self.x.pin_memory(), self.y.pin_memory(), self.failures)


def collate(items: list[tuple]) -> Batch:
    good = [item for item in items if item[1] is not None]
    failures = [(item[0], item[3]) for item in items if item[1] is None]
    if not good:
        return Batch(torch.zeros(0, dtype=torch.long), torch.zeros(0), torch.zeros(0, dtype=torch.long), failures)
    return Batch(
        torch.tensor([item[0] for item in good], dtype=torch.long),
        torch.stack([item[1] for item in good]),
        torch.tensor([item[2] for item in good], dtype=torch.long),
        failures,
    )


def make_loader(dataset: torch.utils.data.Dataset, order: Iterable[int], *, batch_size: int, num_workers: int,
                seed: int = 0, pin_memory: bool = False,
                collate_fn: Callable = collate) -> torch.utils.data.DataLoader:
    """A DataLoader visiting ``order`` (indices into ``dataset``) in batches made by ``collate_fn``
    (default :func:`collate`: a :class:`Batch`).

    Its own seeded generator keeps the global torch RNG (dropout) untouched by how many
    workers there are.
    """
    return torch.utils.data.DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=list(order),
        collate_fn=collate_fn,
        num_workers=num_workers,
        generator=torch.Generator().manual_seed(seed),
        pin_memory=pin_memory,
    )


class FailureLog:
    """Warns once per file that could not be loaded, and remembers which ones."""

    def __init__(self, dataset: MfccDataset):
        self.dataset = dataset
        self.reasons: dict[str, str] = {}

    def note(self, batch: Batch) -> None:
        for index, reason in batch.failures:
            key = self.dataset.tracks[index].key
            if key not in self.reasons:
                self.reasons[key] = reason
                log.warning("skipping a file that cannot be loaded: %s", reason)


def feature_statistics(loader: Iterable[Batch], failures: FailureLog | None = None, *, progress: bool = True,
                       total: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-coefficient mean and standard deviation over every frame of every track.

    Returns
    -------
    mean, std : torch.Tensor [shape=(n_mfcc,), dtype=float32]
    """

    total_sum = total_sq = None
    count = 0
    for batch in tqdm(loader, total=total, desc="feature statistics", unit="batch", leave=False,
                      disable=None if progress else True):
        if failures is not None:
            failures.note(batch)
        if not len(batch):
            continue
        x = batch.x.to(torch.float64)
        s, sq = x.sum(dim=(0, 2)), x.square().sum(dim=(0, 2))
        total_sum = s if total_sum is None else total_sum + s
        total_sq = sq if total_sq is None else total_sq + sq
        count += x.shape[0] * x.shape[2]
    if not count:
        raise ValueError("no training track could be loaded")
    mean = total_sum / count
    std = (total_sq / count - mean.square()).clamp(min=0).sqrt()
    return mean.float(), std.float()
