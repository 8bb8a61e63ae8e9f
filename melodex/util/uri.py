"""Telling a URI (``s3://bucket/a.mp3``) from a local path, and a ``file://`` URI's local path.

Kept apart from :mod:`melodex.audio.uris` (which lists and reads URIs through ``pyarrow.fs``)
so the library store can spell a track's path without importing anything that decodes audio.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit
from urllib.request import url2pathname

from melodex.errors import MelodexError

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


def scheme_of(item: object) -> str | None:
    """The lower-case scheme of a URI string (``s3``), or None for a plain path (or a Path)."""
    if not isinstance(item, str):
        return None
    match = _SCHEME.match(item)
    return match.group(1).lower() if match else None


def local_path(item: str | Path) -> Path | None:
    """The local path a plain path or a ``file://`` URI names; None for any other URI."""
    scheme = scheme_of(item)
    if scheme is None:
        return Path(item)
    if scheme != "file":
        return None
    parts = urlsplit(str(item))
    if parts.netloc not in ("", "localhost"):
        raise MelodexError(f"{item}: a file:// URI names a file on this machine (file:///path), "
                           f"not on host {parts.netloc}")
    return Path(url2pathname(parts.path))
