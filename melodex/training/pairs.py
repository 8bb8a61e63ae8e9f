"""Unlabelled audio for self-supervised training: the tracks of some folders, and pairs of views of each.

:func:`audio_dataset` lists any folders of audio (every format of
:data:`~melodex.constants.AUDIO_EXTENSIONS`, found as every command finds files) as a
:class:`~melodex.datasets.base.Dataset` without labels: 90% of the tracks train, 10% are held out
for validation (a hash of the key decides, so adding files moves no other track).
A file named as FMA names its audio (``NNN/NNNNNN.mp3``) gets FMA's key, any other the key the
folder loader would give it, so the MFCC cache that ``melodex preprocess`` filled is found.

:class:`PairViews` turns a track into two *views*: windows of ``view_frames`` MFCC frames cut at
independent random offsets from the real (unpadded) audio of the track's first segment, each, with
probability ``augment.prob``, taken from one of the clip's augmented variants (low-pass, codec,
noise, shifted start; :mod:`melodex.training.variants`) instead of the clean MFCC, and given a
random gain. The MFCC comes from the cache when it holds the file as it is now, else the file
is decoded, so memory stays bounded by a batch whatever the number of files. With a
:class:`~melodex.training.segment_bank.SegmentBank` (``--segments N``), each view first picks one of
the track's segments (the first one or a further one, uniformly and independently of the other view),
so the two views of a pair usually come from places far apart in the track; a further segment has
no augmented variants, so its views are clean (with the random gain).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from melodex.audio.files import find_audio_files
from melodex.constants import AUDIO_EXTENSIONS
from melodex.datasets.base import Dataset, Track
from melodex.datasets.splits import hash_order, key_from_relpath
from melodex.errors import DatasetError
from melodex.features.mfcc import FeatureConfig
from melodex.training.augment import gain_mfcc
from melodex.training.data import MfccDataset, make_loader
from melodex.training.segment_bank import SegmentBank
from melodex.training.variants import VariantBank

VALIDATION_SHARE = 0.1
_FMA_NAME = re.compile(r"^\d{6}$")


def audio_dataset(inputs: Sequence[str | Path], *, seed: int = 0) -> Dataset:
    """Every audio file under ``inputs`` (folders searched recursively, or files) as unlabelled tracks.

    Raises :class:`DatasetError` when a path does not exist or no audio file is found.
    """
    try:
        files = find_audio_files(inputs)
    except FileNotFoundError as exc:
        raise DatasetError(str(exc)) from None
    if not files:
        raise DatasetError(f"{', '.join(map(str, inputs))}: no audio files ({', '.join(AUDIO_EXTENSIONS)}) found")
    taken: set[str] = set()
    keys = [_key(path, inputs, taken) for path in files]
    held_out = _validation(keys, seed)
    tracks = [Track(key=key, path=path, label=None, split="validation" if key in held_out else "training")
              for key, path in zip(keys, files)]
    roots = [Path(p) for p in inputs]
    return Dataset(name=roots[0].name or "audio", root=roots[0], tracks=tracks, labels=[])


def _key(path: Path, inputs: Sequence[str | Path], taken: set[str]) -> str:
    if _FMA_NAME.match(path.stem) and path.parent.name == path.stem[:3] and path.stem not in taken:
        taken.add(path.stem)
        return path.stem
    for root in map(Path, inputs):
        if root.is_dir() and path.is_relative_to(root):
            return key_from_relpath(path.relative_to(root), taken)
    return key_from_relpath(path.name, taken)


def _validation(keys: list[str], seed: int) -> set[str]:
    """The keys held out for validation: about :data:`VALIDATION_SHARE` of them (at least 2 of 8 or
    more, 1 of 3 or more, none of fewer), those whose ``sha256(seed:key)`` is lowest, so that adding
    files moves a track only at the boundary."""
    n = len(keys)
    wanted = max(2 if n >= 8 else 1 if n >= 3 else 0, round(n * VALIDATION_SHARE))
    return set(hash_order(keys, seed)[:wanted])


def view_frames(config: FeatureConfig, seconds: float) -> int:
    """MFCC frames in a view of ``seconds`` (at most a whole segment's)."""
    return max(8, min(config.n_frames, round(seconds * config.sample_rate / config.hop_length)))


@dataclass
class PairBatch:
    """Two views of each loadable track: ``a`` and ``b`` [shape=(B, n_mfcc, view_frames)]."""

    indices: torch.Tensor
    a: torch.Tensor
    b: torch.Tensor
    failures: list[tuple[int, str]]

    def __len__(self) -> int:
        return int(self.indices.shape[0])

    def pin_memory(self) -> PairBatch:
        return PairBatch(self.indices, self.a.pin_memory(), self.b.pin_memory(), self.failures)


class PairViews(torch.utils.data.Dataset):
    """Items ``(index, view a or None, view b or None, failure reason or None)`` of one epoch.

    Every draw comes from ``(seed, epoch, index)``, so an epoch repeats exactly whatever the
    number of workers (validation uses a fixed epoch, so its pairs are the same every epoch).
    """

    def __init__(self, base: MfccDataset, bank: VariantBank | None, *, frames: int, seed: int, epoch: int,
                 prob: float = 0.0, gain_db: float = 0.0, segments: SegmentBank | None = None):
        self.base, self.bank, self.frames, self.seed, self.epoch = base, bank, frames, seed, epoch
        self.segments = segments
        self.prob, self.gain_db = (prob, gain_db) if bank is not None else (0.0, 0.0)
        self.tracks = base.tracks

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index: int):
        index, clean, _, reason = self.base[index]
        if clean is None:
            return index, None, None, reason
        rng = np.random.default_rng([self.seed, self.epoch, index])
        real = self._real_frames(clean.numpy())
        variants = self.bank.get(self.tracks[index]) if self.bank is not None and self.prob > 0 else None
        further = self.segments.get(self.tracks[index]) if self.segments is not None else None
        views = [self._view(clean.numpy(), variants, real, rng, further) for _ in range(2)]
        return index, torch.from_numpy(views[0]), torch.from_numpy(views[1]), None

    @staticmethod
    def _real_frames(mfcc: np.ndarray) -> int:
        """Frames before the padding: a segment shorter than the window ends in copies of its floor frame."""
        differs = np.flatnonzero(np.any(mfcc != mfcc[:, -1:], axis=0))
        return int(differs[-1]) + 2 if len(differs) else mfcc.shape[-1]

    def _view(self, clean: np.ndarray, variants: np.ndarray | None, real: int, rng: np.random.Generator,
              further: np.ndarray | None = None) -> np.ndarray:
        source = clean
        segment = int(rng.integers(1 + len(further))) if further is not None and len(further) else 0
        if segment:  # a further segment: full, and without variants
            source, real, variants = further[segment - 1], further.shape[-1], None
        if variants is not None and rng.random() < self.prob:
            source = np.asarray(variants[int(rng.integers(len(variants)))])
        start = int(rng.integers(0, max(0, real - self.frames) + 1))
        view = np.ascontiguousarray(source[:, start:start + self.frames], dtype=np.float32)
        if view.shape[-1] < self.frames:  # a segment shorter than a view: as inference pads it
            view = np.pad(view, ((0, 0), (0, self.frames - view.shape[-1])), mode="edge")
        if self.gain_db:
            view = gain_mfcc(view, float(rng.uniform(-self.gain_db, self.gain_db)), self.base.config)
        return view


def collate_pairs(items: list[tuple]) -> PairBatch:
    good = [item for item in items if item[1] is not None]
    failures = [(item[0], item[3]) for item in items if item[1] is None]
    if not good:
        empty = torch.zeros(0)
        return PairBatch(torch.zeros(0, dtype=torch.long), empty, empty, failures)
    return PairBatch(torch.tensor([item[0] for item in good], dtype=torch.long),
                     torch.stack([item[1] for item in good]), torch.stack([item[2] for item in good]), failures)


def pair_loader(views: PairViews, order: Sequence[int], *, batch_size: int, num_workers: int, seed: int = 0,
                pin_memory: bool = False) -> torch.utils.data.DataLoader:
    """A DataLoader over ``order`` (indices into ``views``) in batches of :class:`PairBatch`
    (:func:`~melodex.training.data.make_loader` with :func:`collate_pairs`)."""
    return make_loader(views, order, batch_size=batch_size, num_workers=num_workers, seed=seed,
                       pin_memory=pin_memory, collate_fn=collate_pairs)
