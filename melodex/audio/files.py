"""TODO docstring."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from melodex.constants import AUDIO_EXTENSIONS


def is_audio_file(path: str | Path) -> bool:
    """True when ``path`` has one of :data:`AUDIO_EXTENSIONS`, in any letter case."""
    return Path(path).suffix.lower() in AUDIO_EXTENSIONS


def iter_audio_files(inputs: Iterable[str | Path]) -> Iterator[Path]:
    """Yield the audio files named by ``inputs``, searching directories recursively.

    A directory is walked in sorted order, following symbolic links but never entering the
    same directory twice (so a symlink loop ends). A file named explicitly is yielded whatever
    its extension; files found inside directories only when :func:`is_audio_file` says so.
    A path that does not exist raises :class:`FileNotFoundError` naming it.
    """
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            yield from _walk(path)
        elif path.exists() or path.is_symlink():
            yield path
        else:
            raise FileNotFoundError(f"{path}: no such file or directory")


def find_audio_files(inputs: Iterable[str | Path]) -> list[Path]:
    """Like :func:`iter_audio_files`, as a sorted list without duplicates."""
    return sorted(set(iter_audio_files(inputs)), key=lambda p: str(p))


def _walk(root: Path) -> Iterator[Path]:
    seen: set[tuple[int, int]] = set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        try:
            st = os.stat(dirpath)
        except OSError:
            dirnames[:] = []
            continue
        key = (st.st_dev, st.st_ino)
        if key in seen:  # a symlink loop or a second link to the same folder
            dirnames[:] = []
            continue
        seen.add(key)
        dirnames.sort()
        for name in sorted(filenames):
            if is_audio_file(name):
                yield Path(dirpath) / name


def collect_audio_files(inputs: Iterable[str | Path]) -> list[Path]:
    """Files named in ``inputs``, directories searched recursively, sorted by path.

    Inside directories only audio extensions count (:func:`melodex.audio.decode.is_audio_file`,
    any letter case); a file named explicitly is kept whatever it is, even when it does not
    exist, so that its failure is reported with the other results instead of ending the run.
    """
    found: set[Path] = set()
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found.update(iter_audio_files([path]))
        else:
            found.add(path)
    return sorted(found, key=str)
