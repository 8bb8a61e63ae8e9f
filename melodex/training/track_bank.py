"""Arrays made once per training track from its audio and kept: the storage shared by the augmented
variants (:mod:`melodex.training.variants`) and the contrastive segments
(:mod:`melodex.training.segment_bank`).

Layout: ``<root>/<fingerprint>/<key[:3]>/<key>-<size>-<mtime_ns>.npy`` (float32, written atomically).
The fingerprint hashes the settings that shape an entry, and the name carries the source file's size
and mtime, so a changed setting or a replaced file gets new entries. Without a root (no cache folder)
the bank lives in a scratch folder of its own under the system's temporary directory (``$TMPDIR``) and
is deleted with it: in memory, a run over 100,000 tracks would have held tens of GB.
"""

from __future__ import annotations

import io
import logging
import os
import shutil
import tempfile
import weakref
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from melodex.datasets.base import Track
from melodex.util.atomic import atomic_write

log = logging.getLogger(__name__)


class TrackBank:
    """One array per track, on disk under ``root/fingerprint``; ``root`` None: in a scratch folder
    that is deleted when the bank is (``temporary``)."""

    def __init__(self, root: str | Path | None, fingerprint: str):
        self.temporary = root is None
        if root is None:
            root = tempfile.mkdtemp(prefix="melodex-bank-")
            # removed by the process that made it alone: forked DataLoader workers share the folder
            weakref.finalize(self, _remove_scratch, root, os.getpid())
        self.root = Path(root) / fingerprint

    def name(self, track: Track) -> str | None:
        """The entry's name: the key with the source file's size and mtime (None: no such file)."""
        try:
            stat = Path(track.path).stat()
        except OSError:
            return None
        return f"{track.key}-{stat.st_size}-{stat.st_mtime_ns}"

    def _path(self, name: str) -> Path:
        return self.root / name[:3] / f"{name}.npy"

    def load(self, track: Track) -> np.ndarray | None:
        """The entry of ``track`` as stored (memory-mapped on disk, so reading one row reads its bytes), or None."""
        name = self.name(track)
        if name is None:
            return None
        try:
            return np.load(self._path(name), mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError):
            return None

    def has(self, track: Track) -> bool:
        name = self.name(track)
        return name is not None and self._path(name).is_file()

    def put(self, track: Track, array: np.ndarray) -> None:
        name = self.name(track)
        if name is None:
            return
        array = np.ascontiguousarray(array, dtype=np.float32)
        buffer = io.BytesIO()
        np.save(buffer, array, allow_pickle=False)
        with atomic_write(self._path(name), "wb") as handle:
            handle.write(buffer.getbuffer())

    def make_missing(self, tracks: Sequence[Track], make: Callable[[Track], np.ndarray], *, num_workers: int,
                     progress: bool, desc: str, unit: str) -> dict[str, int]:
        """Make (``make``, in ``num_workers`` DataLoader workers) and keep the entry of every track that
        lacks one; returns counts of ``{"made", "kept", "failed"}``. A track ``make`` fails on is counted
        and logged at debug level, never raised. ``make`` must pickle (a module-level function or a
        ``functools.partial`` of one)."""
        missing = [t for t in tracks if not self.has(t)]
        counts = {"made": 0, "kept": len(tracks) - len(missing), "failed": 0}
        loader = torch.utils.data.DataLoader(_Maker(missing, make), batch_size=None,
                                             num_workers=num_workers if missing else 0, collate_fn=_as_is)
        for index, array, reason in tqdm(loader, total=len(missing), desc=desc, unit=unit, leave=False,
                                         disable=None if progress else True):
            if array is None:
                counts["failed"] += 1
                log.debug("no %s of %s: %s", desc, missing[index].path, reason)
                continue
            self.put(missing[index], array)
            counts["made"] += 1
        return counts


class _Maker(torch.utils.data.Dataset):
    """Items ``(index, array or None, reason or None)``: the DataLoader's workers decode the tracks."""

    def __init__(self, tracks: Sequence[Track], make: Callable[[Track], np.ndarray]):
        self.tracks, self.make = list(tracks), make

    def __len__(self) -> int:
        return len(self.tracks)

    def __getitem__(self, index: int):
        try:
            return index, self.make(self.tracks[index]), None
        except Exception as exc:  # noqa: BLE001 (one odd file costs its entry, never the run)
            return index, None, f"{type(exc).__name__}: {exc}"


def _remove_scratch(folder: str, owner: int) -> None:
    if os.getpid() == owner:
        shutil.rmtree(folder, ignore_errors=True)


def _as_is(item):
    return item
