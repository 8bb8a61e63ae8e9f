"""Datasets: FMA, a folder per label, or a CSV manifest, all as one :class:`Dataset` of :class:`Track`.

:func:`load_dataset` picks the reader from what ``data_dir`` is:

* a ``.csv`` file -> a manifest (:mod:`melodex.datasets.manifest`);
* a folder with FMA metadata -> FMA (:mod:`melodex.datasets.fma`): ``<data_dir>/../fma_metadata/
  tracks.csv`` (``--data_dir data/fma_small``), ``metadata_dir`` given, or a folder holding
  ``fma_metadata/`` next to an ``fma_small``/``fma_medium``/``fma_large``/``fma_full`` folder
  (``--data_dir demo_data``);
* any other folder -> a folder per label (:mod:`melodex.datasets.folder`).

More readers plug in through :data:`KINDS`: a name -> a function
``(path, *, metadata_dir, subset, seed) -> Dataset``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from melodex.datasets.base import SPLITS, Dataset, Track
from melodex.datasets.fma import AUDIO_FOLDERS, default_metadata_dir, load_fma
from melodex.datasets.folder import load_folder
from melodex.datasets.manifest import load_manifest
from melodex.errors import DatasetError

__all__ = ["Dataset", "Track", "SPLITS", "KINDS", "load_dataset", "detect_kind"]

log = logging.getLogger(__name__)

Loader = Callable[..., Dataset]


def _fma(path: Path, *, metadata_dir=None, subset=None, seed: int = 0) -> Dataset:
    audio_dir = _fma_audio_dir(path)
    if audio_dir != path:
        log.info("using %s with %s", audio_dir, path / "fma_metadata")
    return load_fma(audio_dir, metadata_dir, subset)


def _folder(path: Path, *, metadata_dir=None, subset=None, seed: int = 0) -> Dataset:
    return load_folder(path, seed=seed)


def _manifest(path: Path, *, metadata_dir=None, subset=None, seed: int = 0) -> Dataset:
    return load_manifest(path, seed=seed)


KINDS: dict[str, Loader] = {"fma": _fma, "folder": _folder, "manifest": _manifest}


def _fma_audio_dir(path: Path) -> Path:
    """``path`` itself, or the FMA audio folder inside it when ``path`` holds ``fma_metadata/``."""

    if (path / "fma_metadata" / "tracks.csv").is_file():
        for name in AUDIO_FOLDERS:
            if (path / name).is_dir():
                return path / name
    return path


def detect_kind(data_dir: str | Path, metadata_dir: str | Path | None = None) -> str:
    """The :data:`KINDS` name that reads ``data_dir`` (see the module docstring).

    Raises
    ------
    DatasetError
        ``data_dir`` does not exist, or looks like FMA (``fma_*``) but its ``tracks.csv`` is
        missing; the message names the path that was expected.
    """

    path = Path(data_dir)
    if path.is_file():
        if path.suffix.lower() == ".csv":
            if path.name == "tracks.csv":
                raise DatasetError(f"{path}: pass FMA's audio folder (e.g. data/fma_small), not tracks.csv")
            return "manifest"
        raise DatasetError(f"{path}: not a dataset (expected a folder, or a .csv manifest)")
    if not path.is_dir():
        raise DatasetError(f"{path}: no such file or folder (expected a dataset folder or a .csv manifest)")
    if metadata_dir is not None:
        return "fma"
    if (default_metadata_dir(path) / "tracks.csv").is_file() or _fma_audio_dir(path) != path:
        return "fma"
    if path.name.lower().startswith("fma_"):
        expected = default_metadata_dir(path) / "tracks.csv"
        raise DatasetError(f"{expected}: not found (FMA's metadata is expected there; pass --metadata_dir)")
    return "folder"


def load_dataset(
    data_dir: str | Path,
    *,
    metadata_dir: str | Path | None = None,
    kind: str = "auto",
    subset: str | None = None,
    seed: int = 0,
) -> Dataset:
    """Load a dataset of labelled audio files, choosing the reader from ``data_dir``.

    Parameters
    ----------
    data_dir : str or Path
        FMA's audio folder (``data/fma_small``), a folder per label, or a ``.csv`` manifest.
    metadata_dir : str or Path, optional
        FMA only: where ``tracks.csv`` is (default ``<data_dir>/../fma_metadata``).
    kind : str
        ``"auto"`` or a name in :data:`KINDS` (``"fma"``, ``"folder"``, ``"manifest"``).
    subset : str, optional
        FMA only: ``"small"``, ``"medium"`` or ``"large"``; default from the folder name.
    seed : int
        Seed of the deterministic split of folder and manifest datasets (FMA has its own).

    Raises
    ------
    DatasetError
        ``data_dir`` is missing or malformed, or ``kind`` is unknown; one line naming the path.
    """
    if kind == "auto":
        kind = detect_kind(data_dir, metadata_dir)
    elif kind not in KINDS:
        raise DatasetError(f"unknown dataset kind {kind!r}; expected auto or one of {', '.join(KINDS)}")
    dataset = KINDS[kind](Path(data_dir), metadata_dir=metadata_dir, subset=subset, seed=seed)
    if not dataset.tracks:
        raise DatasetError(f"{data_dir}: the dataset holds no usable tracks ({len(dataset.skipped)} skipped)")
    return dataset
