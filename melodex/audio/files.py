"""Finding the audio files a user names: files as given, folders searched recursively.

Every command and the datasets find files here, so "what counts as audio" (the extensions of
:data:`melodex.constants.AUDIO_EXTENSIONS`, in any letter case), the order (sorted by path) and
the handling of symlink loops are the same everywhere.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from melodex.audio.uris import RemoteFile, find_audio_uris
from melodex.constants import AUDIO_EXTENSIONS
from melodex.errors import MelodexError
from melodex.util.uri import local_path


def is_audio_file(path: str | Path) -> bool:
    """True when ``path`` has one of :data:`AUDIO_EXTENSIONS`, in any letter case."""
    return Path(path).suffix.lower() in AUDIO_EXTENSIONS


def find_audio_files(inputs: Iterable[str | Path], *, missing: str = "raise") -> list[Path]:
    """The audio files named by ``inputs``, directories searched recursively, sorted by path,
    without duplicates.

    A directory is walked in sorted order, following symbolic links but never entering the
    same directory twice (so a symlink loop ends); inside it only :func:`is_audio_file` names
    count. A file named explicitly is kept whatever its extension.

    Parameters
    ----------
    inputs : iterable of str or Path
        Files and directories.
    missing : {"raise", "keep"}
        What to do with a named path that does not exist: raise :class:`FileNotFoundError`
        naming it (a dataset's folder), or keep it so that its failure is reported with the
        other results instead of ending the run (``infer``, ``index``).
    """
    if missing not in ("raise", "keep"):
        raise ValueError(f"missing must be 'raise' or 'keep', not {missing!r}")
    found: set[Path] = set()
    for item in inputs:
        path = local_path(item)  # a file:// URI is a local path
        if path is None:
            raise MelodexError(f"{item}: URIs other than file:// are read by --engine ray only (a Ray cluster "
                               "reads them through pyarrow.fs); mount the storage, or add --engine ray")
        if path.is_dir():
            found.update(_walk(path))
        elif missing == "keep" or path.exists() or path.is_symlink():
            found.add(path)
        else:
            raise FileNotFoundError(f"{path}: no such file or directory")
    return sorted(found, key=str)


def find_audio_sources(inputs: Iterable[str | Path | RemoteFile], *,
                       missing: str = "raise") -> list[Path | RemoteFile]:
    """As :func:`find_audio_files`, but URIs that ``pyarrow.fs`` reads (``s3://bucket/prefix``)
    are listed too (:func:`melodex.audio.uris.find_audio_uris`) and kept as :class:`RemoteFile`;
    a ``file://`` URI is a local path. Local paths come first, sorted, then each URI's objects."""
    local: list[str | Path] = []
    uris: list[str] = []
    remote: dict[str, RemoteFile] = {}
    for item in inputs:
        if isinstance(item, RemoteFile):
            remote.setdefault(item.uri, item)
        elif local_path(item) is not None:
            local.append(item)
        else:
            uris.append(str(item))
    for found in find_audio_uris(uris, missing=missing):
        remote.setdefault(found.uri, found)
    return [*find_audio_files(local, missing=missing), *sorted(remote.values(), key=lambda r: r.uri)]


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
