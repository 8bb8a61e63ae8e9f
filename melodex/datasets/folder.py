"""A folder per label, as GTZAN is laid out: ``root/<label>/**/<file>.<audio extension>``.

The label is the name of the first-level folder; files may sit in any depth of subfolders below
it and have any audio extension in any letter case (:func:`melodex.audio.files.is_audio_file`). The
split is :func:`melodex.datasets.splits.stratified_split` (80/10/10 per label, deterministic
for a seed). Each track's key is derived from its path relative to ``root``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from melodex.audio.files import find_audio_files
from melodex.datasets.base import Dataset, Track
from melodex.datasets.splits import key_from_relpath, stratified_split
from melodex.errors import DatasetError

log = logging.getLogger(__name__)


def load_folder(root: str | Path, *, seed: int = 0) -> Dataset:
    """Every audio file under ``root/<label>/``, labelled by its first-level folder.

    Parameters
    ----------
    root : str or Path
        The dataset folder; each subfolder is one label.
    seed : int
        Seed of the deterministic stratified split.

    Returns
    -------
    Dataset
        Labels are the sorted names of the subfolders that hold audio. Audio files lying
        directly in ``root`` (no label) are listed in ``Dataset.skipped`` with a warning.

    Raises
    ------
    DatasetError
        ``root`` is not a folder, or no labelled audio file is found under it.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: no such folder (expected <root>/<label>/<audio files>)")
    files = find_audio_files([root])
    unlabelled: list[tuple[str, str]] = []
    entries: list[tuple[str, Path, str]] = []  # key, path, label
    taken: set[str] = set()
    for path in files:
        rel = Path(os.path.relpath(path, root))
        if len(rel.parts) < 2:
            unlabelled.append((str(path), "not inside a label folder"))
            continue
        entries.append((key_from_relpath(rel, taken), path, rel.parts[0]))
    if unlabelled:
        log.warning(
            "skipping %d audio files directly in %s (no label folder): %s",
            len(unlabelled),
            root,
            ", ".join(Path(p).name for p, _ in unlabelled[:10]),
        )
    if not entries:
        raise DatasetError(
            f"{root}: no audio files in label folders (expected {root}/<label>/<file>.wav|mp3|...)"
        )
    splits = stratified_split(((key, label) for key, _, label in entries), seed=seed)
    tracks = [Track(key=key, path=path, label=label, split=splits[key]) for key, path, label in entries]
    labels = sorted({label for _, _, label in entries})
    log.info("%s: %d tracks in %d label folders", root, len(tracks), len(labels))
    return Dataset(name=root.name, root=root, tracks=tracks, labels=labels, skipped=unlabelled)
