"""The one interface every dataset (FMA, folder-per-label, CSV manifest, demo) provides.

A dataset is a list of :class:`Track` records plus its label list; loaders never decode audio.
Splits are ``"training"``, ``"validation"`` and ``"test"`` (FMA's names).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SPLITS = ("training", "validation", "test")


@dataclass(frozen=True)
class Track:
    """One labelled audio file and what is known about it.

    ``key`` is unique within the dataset and safe as a file name (FMA: the 6-digit id).
    Optional fields are None when the source does not say; nothing is invented.
    ``date`` is an ISO date string (``YYYY-MM-DD`` or ``YYYY``) and ``date_source`` says which
    field it came from (e.g. ``"album.date_released"`` or ``"track.date_created"``).
    """

    key: str
    path: Path
    label: str | None
    split: str | None = None
    artist: str | None = None
    artist_id: str | None = None
    title: str | None = None
    album: str | None = None
    date: str | None = None
    date_source: str | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)


@dataclass
class Dataset:
    """Tracks plus the sorted label list that indexes the model's classes."""

    name: str
    root: Path
    tracks: list[Track]
    labels: list[str]
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (key or path, reason)

    def __len__(self) -> int:
        return len(self.tracks)

    def __iter__(self) -> Iterator[Track]:
        return iter(self.tracks)

    def split(self, name: str) -> list[Track]:
        """The tracks of one split (``"training"``, ``"validation"`` or ``"test"``)."""
        if name not in SPLITS:
            raise ValueError(f"unknown split {name!r}; expected one of {SPLITS}")
        return [t for t in self.tracks if t.split == name]

    def split_sizes(self) -> dict[str, int]:
        return {name: len(self.split(name)) for name in SPLITS}

    def label_index(self) -> dict[str, int]:
        return {label: i for i, label in enumerate(self.labels)}

    def subset(self, keys: Sequence[str]) -> Dataset:
        wanted = set(keys)
        return Dataset(self.name, self.root, [t for t in self.tracks if t.key in wanted], self.labels, self.skipped)
