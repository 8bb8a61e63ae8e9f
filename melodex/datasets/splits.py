"""Deterministic stratified splits and file-name-safe keys, shared by the folder and manifest loaders.

The split is a pure function of (seed, label, key): within each label, tracks are ordered by
``sha256(f"{seed}:{key}")`` and the first 80 % go to training, the next 10 % to validation and
the rest to test. Because each track's place depends only on its own key, adding files to a
folder moves no existing track to another split except at the boundaries, and the result never
depends on the order in which files were listed or on the platform.
"""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import PurePath

DEFAULT_FRACTIONS = (0.8, 0.1, 0.1)  # training, validation, test
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def split_counts(n: int, fractions: Sequence[float] = DEFAULT_FRACTIONS) -> tuple[int, int, int]:
    """How many of ``n`` tracks of one label go to (training, validation, test).

    Validation and test get ``round(n * fraction)`` each but at least one track as soon as a
    label has three or more; a label with one or two tracks is all training.
    """
    if n < 3:
        return n, 0, 0
    _, f_val, f_test = fractions
    n_val = max(1, round(n * f_val))
    n_test = max(1, round(n * f_test))
    return n - n_val - n_test, n_val, n_test


def hash_order(keys: Iterable[str], seed: int = 0) -> list[str]:
    """``keys`` ordered by ``sha256(f"{seed}:{key}")``: each key's place depends on its own key only."""
    return sorted(keys, key=lambda k: hashlib.sha256(f"{seed}:{k}".encode()).hexdigest())


def stratified_split(
    items: Iterable[tuple[str, str]],
    *,
    seed: int = 0,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
) -> dict[str, str]:
    """Assign each ``(key, label)`` to ``"training"``, ``"validation"`` or ``"test"``.

    Returns ``{key: split}``; deterministic for a given ``seed`` (see the module docstring).
    """
    by_label: dict[str, list[str]] = defaultdict(list)
    for key, label in items:
        by_label[label].append(key)
    result: dict[str, str] = {}
    for label in sorted(by_label):
        keys = hash_order(by_label[label], seed)
        n_train, n_val, _ = split_counts(len(keys), fractions)
        for i, key in enumerate(keys):
            result[key] = "training" if i < n_train else "validation" if i < n_train + n_val else "test"
    return result


def key_from_relpath(relpath: str | PurePath, taken: set[str] | None = None) -> str:
    """A file-name-safe key for a path relative to the dataset root, unique within ``taken``.

    ``"Rock/Live Set/01 song.MP3"`` -> ``"Rock__Live_Set__01_song.MP3"``. When two paths map to
    the same key, the later one gets ``-`` and 8 hex digits of its path's hash appended.
    ``taken`` (if given) is updated with the returned key.
    """
    parts = PurePath(relpath).parts
    key = "__".join(_UNSAFE.sub("_", part).strip("_") or "_" for part in parts)[:200] or "_"
    if taken is not None:
        if key in taken:
            key = f"{key}-{hashlib.sha256(str(relpath).encode()).hexdigest()[:8]}"
        taken.add(key)
    return key
