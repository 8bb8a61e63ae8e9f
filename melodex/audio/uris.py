"""Audio named by URIs that ``pyarrow.fs`` understands: ``s3://``, ``gs://``, ``hdfs://``, ``file://``.

``file://`` URIs are local paths spelled another way: :func:`melodex.util.uri.local_path` turns
them into one, and every engine treats them as it treats any local path (so a track has one
spelling in the store, whichever way it was named). Any other scheme is read as bytes through a ``pyarrow.fs``
filesystem (:func:`read_bytes`), which only ``--engine ray`` does: the files are listed here, on
the machine that runs the command, and each :class:`RemoteFile` carries its filesystem object,
which is sent to the nodes that decode it (``pyarrow.fs`` filesystems pickle).

How a URI becomes a filesystem, first match wins:

1. a filesystem registered for its scheme with :func:`register_filesystem` (a mock in tests,
   or a filesystem built with settings a URI cannot say, such as an endpoint);
2. ``pyarrow.fs.FileSystem.from_uri``: ``s3://bucket/prefix`` (credentials found as the AWS SDK
   finds them: environment, ``~/.aws``, instance role), ``gs://bucket/prefix`` (Google's
   application default credentials), ``hdfs://host:port/path`` (needs Java and libhdfs);
3. ``fsspec`` when it is installed and knows the scheme (``az://`` with adlfs, ``https://``...),
   wrapped in ``pyarrow.fs.PyFileSystem(FSSpecHandler(...))``.

A scheme none of them knows, or one whose filesystem cannot start, is a one-line
:class:`~melodex.errors.MelodexError`; a missing or unreadable object is an
:class:`~melodex.errors.AudioLoadError` with the reason the local decoder gives for a local file.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

import pyarrow as pa
import pyarrow.fs as pafs

try:  # optional (torch brings it): schemes pyarrow lacks, through the scheme's own package
    import fsspec
except ImportError:  # pragma: no cover
    fsspec = None

from melodex.constants import AUDIO_EXTENSIONS
from melodex.errors import AudioLoadError, MelodexError
from melodex.util.uri import scheme_of

_REGISTERED: dict[str, pafs.FileSystem] = {}


@dataclass(frozen=True)
class RemoteFile:
    """One audio object: its ``uri`` (what outputs and the store show), the filesystem that
    reads it and its ``path`` inside that filesystem. ``str()`` is the URI."""

    uri: str
    filesystem: pafs.FileSystem = field(compare=False, repr=False)
    path: str = ""

    def __str__(self) -> str:
        return self.uri


def register_filesystem(scheme: str, filesystem: pafs.FileSystem | None) -> None:
    """Read ``scheme://...`` URIs with ``filesystem`` (None removes it): the URI's host and path,
    joined, are the path inside it (``mem://music/a.mp3`` -> ``music/a.mp3``)."""
    if filesystem is None:
        _REGISTERED.pop(scheme.lower(), None)
    else:
        _REGISTERED[scheme.lower()] = filesystem


def resolve(uri: str, known: dict | None = None) -> tuple[pafs.FileSystem, str]:
    """``(filesystem, path inside it)`` for ``uri``; a one-line MelodexError when no filesystem reads it.

    ``known`` (a dict the caller keeps) remembers each bucket's filesystem (scheme, host and
    query), so a list of URIs starts one filesystem per bucket, not one per URI (for S3 that
    can be a region lookup each)."""
    scheme = scheme_of(uri) or ""
    parts = urlsplit(uri)
    if scheme in _REGISTERED:
        return _REGISTERED[scheme], unquote(parts.netloc + parts.path).strip("/")
    key = (scheme, parts.netloc, parts.query)
    if known is not None and key in known:
        filesystem, prefix, rooted = known[key]
        tail = unquote(parts.path).rstrip("/")
        return filesystem, prefix + (tail if rooted else tail.lstrip("/"))
    try:
        filesystem, path = pafs.FileSystem.from_uri(uri)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError) as exc:
        problem = _first_line(exc)
        fallback = _fsspec(uri)
        if fallback is not None:
            return fallback
        raise MelodexError(f"{uri}: {scheme}:// URIs cannot be read ({problem})") from None
    except OSError as exc:  # a known scheme whose filesystem cannot start (hdfs without Java)
        raise MelodexError(f"{uri}: cannot open the {scheme}:// filesystem ({_first_line(exc)})") from None
    if known is not None:  # how the scheme spells paths: s3 "bucket" + "/key", hdfs "" + "/path", mock "" + "key"
        tail, whole = unquote(parts.path).rstrip("/"), path.rstrip("/")
        for rooted, end in ((True, tail), (False, tail.lstrip("/"))):
            if whole.endswith(end):
                known[key] = (filesystem, whole[:len(whole) - len(end)], rooted)
                break
    return filesystem, path


def _fsspec(uri: str) -> tuple[pafs.FileSystem, str] | None:
    if fsspec is None:
        return None
    try:
        filesystem, path = fsspec.core.url_to_fs(uri)
    except (ImportError, ValueError, OSError):
        return None
    return pafs.PyFileSystem(pafs.FSSpecHandler(filesystem)), path


def find_audio_uris(uris: Iterable[str], *, missing: str = "keep") -> list[RemoteFile]:
    """The audio objects the ``uris`` name: each itself, or every object under it with one of the
    audio extensions (any letter case) when it is a folder (a prefix), listed recursively; sorted.

    A URI that names nothing is kept as a :class:`RemoteFile` (its read fails later with "no such
    file", a row like any other failure) with ``missing="keep"``; with ``missing="raise"`` it is
    a FileNotFoundError, as for a local path. What each URI is, is asked once per filesystem for
    all of its URIs."""
    known: dict = {}
    named = [(uri, *resolve(uri, known)) for uri in dict.fromkeys(uris)]
    found: dict[str, RemoteFile] = {}
    for filesystem in {id(fs): fs for _, fs, _ in named}.values():
        mine = [(uri, path) for uri, fs, path in named if fs is filesystem]
        for (uri, path), info in zip(mine, _infos(filesystem, [path for _, path in mine])):
            if info.type == pafs.FileType.Directory:
                found.update((item.uri, item) for item in _listing(uri, filesystem, path))
            elif info.type == pafs.FileType.NotFound and missing == "raise":
                raise FileNotFoundError(f"{uri}: no such file or directory")
            else:
                found.setdefault(uri, RemoteFile(uri, filesystem, path))
    return sorted(found.values(), key=lambda item: item.uri)


def _infos(filesystem: pafs.FileSystem, paths: list[str]) -> list[pafs.FileInfo]:
    """What each path is; all Unknown when the filesystem cannot say (no credentials to list,
    say): each file's read then says why, as a row."""
    try:
        return filesystem.get_file_info(paths)
    except OSError:
        return [pafs.FileInfo(path, pafs.FileType.Unknown) for path in paths]


def _listing(uri: str, filesystem: pafs.FileSystem, path: str) -> list[RemoteFile]:
    """The audio objects under the folder ``uri`` (at ``path`` in ``filesystem``)."""
    try:
        entries = filesystem.get_file_info(pafs.FileSelector(path, recursive=True))
    except OSError as exc:
        raise MelodexError(f"{uri}: cannot list the folder ({_first_line(exc)})") from None
    base = path.rstrip("/")
    return [RemoteFile(_child_uri(uri, entry.path[len(base):].lstrip("/")), filesystem, entry.path)
            for entry in entries
            if entry.type == pafs.FileType.File and Path(entry.base_name).suffix.lower() in AUDIO_EXTENSIONS]


def _child_uri(uri: str, relative: str) -> str:
    parts = urlsplit(uri)
    return urlunsplit(parts._replace(path=parts.path.rstrip("/") + "/" + relative))


def read_bytes(item: RemoteFile) -> bytes:
    """The whole object, read through its filesystem.

    Raises AudioLoadError naming the URI with the local decoder's reasons: "no such file",
    "is a directory, not an audio file", "permission denied", "the file is empty (0 bytes)",
    or the filesystem's own first line."""
    try:
        info = item.filesystem.get_file_info(item.path)
        if info.type == pafs.FileType.NotFound:
            raise AudioLoadError(item.uri, "no such file")
        if info.type == pafs.FileType.Directory:
            raise AudioLoadError(item.uri, "is a directory, not an audio file")
        if info.size == 0:
            raise AudioLoadError(item.uri, "the file is empty (0 bytes)")
        with item.filesystem.open_input_stream(item.path) as stream:
            data = stream.read()
    except FileNotFoundError:
        raise AudioLoadError(item.uri, "no such file") from None
    except PermissionError:
        raise AudioLoadError(item.uri, "permission denied") from None
    except OSError as exc:
        text = _first_line(exc)
        raise AudioLoadError(item.uri, "permission denied" if "AccessDenied" in text or "Permission denied" in text
                             else text) from None
    if not data:
        raise AudioLoadError(item.uri, "the file is empty (0 bytes)")
    return data


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    line = text.splitlines()[0]
    return line if len(line) <= 200 else line[:197] + "..."
