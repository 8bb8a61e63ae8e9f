"""What is known about a track besides its sound: artist, title, album, date, genre, release.

Three sources, in rising priority:

* **tags** in the user's own files (:func:`melodex.library.tags.read_tags`: ID3, Vorbis
  comments, MP4 atoms, RIFF INFO), album artist and every value of several artists or genres
  included;
* **FMA** metadata (``tracks.csv`` through :func:`melodex.datasets.load_dataset`): artist name
  and id, title, album and its ``('album', 'id')``, ``album.date_released`` falling back to
  ``track.date_created`` (the ``date_source`` says which), ``genre_top``;
* a **manifest** CSV (``path,artist,title,album,date,genre[,album_artist,album_id]``), whose
  non-empty cells supply or override fields for the files it names.

Dates are normalised to ISO ``YYYY-MM-DD`` or ``YYYY``; a value that is not a date is dropped.
Nothing is invented: a field no source states is absent (None).

**Releases.** Tracks of one release share a ``release_id`` (:func:`release_identity`): FMA's
``album:<('album','id')>``, a manifest's ``manifest:<album_id>``, else one made of the album
title, the album artist (or the artist) and the year, ``title:<album>|<artist>|<year>`` in
lower case, so two albums that share a title are two releases. A track without an album has none.
"""

from __future__ import annotations

import csv
import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from melodex.datasets.base import Track
from melodex.datasets.fma import audio_path, load_tracks
from melodex.errors import DatasetError
from melodex.library.store import resolved_path, year_of
from melodex.library.tags import MAX_TAG_CHARS, finish, normalize_date, read_tags, split_values
from melodex.library.tags import clean as _clean

__all__ = ["FIELDS", "MANIFEST_COLUMNS", "MAX_TAG_CHARS", "fma_tracks", "merge", "normalize_date", "read_manifest",
           "read_tags", "release_identity", "split_values", "track_metadata"]

log = logging.getLogger(__name__)

FIELDS = ("artist", "title", "album", "date", "genre", "album_artist")
MANIFEST_COLUMNS = ("path",) + FIELDS + ("album_id",)
CATALOGUE_RELEASE = "album:"  # release_id of a catalogue album (FMA's ('album', 'id'))
MANIFEST_RELEASE = "manifest:"  # release_id from a manifest's album_id column
TITLE_RELEASE = "title:"  # release_id made of album title, album artist (or artist) and year
_SPACES = re.compile(r"\s+")


def track_metadata(track: Any) -> dict[str, str]:
    """Fields of a :class:`melodex.datasets.base.Track` (FMA or another catalogue).

    ``genre`` is the track's label (FMA's ``genre_top``); ``date``/``date_source`` as the
    dataset loader resolved them (``album.date_released``, else ``track.date_created``);
    ``release_id`` is ``album:<id>`` when the catalogue names the album's id
    (``track.extra["album_id"]``, FMA's ``('album', 'id')``).
    """
    out: dict[str, str] = {}
    for name in ("artist", "artist_id", "title", "album", "date_source"):
        value = _clean(getattr(track, name, None))
        if value:
            out[name] = value
    date = normalize_date(getattr(track, "date", None))
    if date:
        out["date"] = date
    else:
        out.pop("date_source", None)
    genre = _clean(getattr(track, "label", None))
    if genre:
        out["genre"] = genre
    album_id = _id_text((getattr(track, "extra", None) or {}).get("album_id"))
    if album_id:
        out["release_id"] = CATALOGUE_RELEASE + album_id
    return out


def read_manifest(path: str | Path, base_dir: str | Path | None = None) -> dict[str, dict[str, str]]:
    """A manifest CSV (``path,artist,title,album,date,genre[,album_artist,album_id]``) as
    resolved path -> fields.

    Only ``path`` is required; empty cells are left out, so they never erase a tag. Relative
    paths are taken from ``base_dir`` (default: the manifest's folder). A manifest ``date``
    gets ``date_source="manifest"``; an ``album_id`` (any text naming the release) becomes
    ``release_id="manifest:<album_id>"``, so albums that share a title stay apart. Raises :class:`DatasetError` when the file cannot be
    read or has no ``path`` column.
    """

    path = Path(path)
    base = Path(base_dir) if base_dir is not None else path.parent
    reader = None
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            if not reader.fieldnames or "path" not in [f.strip() for f in reader.fieldnames]:
                raise DatasetError(f"{path}: a manifest needs a 'path' column (columns: {','.join(MANIFEST_COLUMNS)})")
            rows = []
            for row in reader:
                if None in row or None in row.values():  # more, or fewer, fields than the header names
                    n = len(reader.fieldnames) + len(row.get(None) or ()) - list(row.values()).count(None)
                    raise DatasetError(f"{path}: line {reader.line_num}: {n} fields, the header has "
                                       f"{len(reader.fieldnames)}")
                rows.append(row)
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read manifest ({exc.strerror or exc})") from exc
    except csv.Error as exc:
        where = f"line {reader.reader.line_num}: " if reader is not None else ""
        raise DatasetError(f"{path}: {where}not a readable CSV ({exc})") from exc
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{path}: not a UTF-8 text file ({exc.reason} at byte {exc.start})") from exc
    out: dict[str, dict[str, str]] = {}
    for row in rows:
        row = {(k or "").strip(): v for k, v in row.items()}
        name = _clean(row.get("path"))
        if not name:
            continue
        file_path = Path(name).expanduser()
        if not file_path.is_absolute():
            file_path = base / file_path
        fields = finish(row, FIELDS, "manifest")
        album_id = _clean(row.get("album_id"))
        if album_id:
            fields["release_id"] = MANIFEST_RELEASE + album_id
        out[resolved_path(file_path)] = fields
    return out


def merge(*layers: Mapping[str, str] | None) -> dict[str, str]:
    """Later layers override earlier ones field by field; ``date_source`` travels with ``date``.

    A layer that names another album (or album artist) without a ``release_id`` drops the
    ``release_id`` of the layers before it, which named another release.
    """
    out: dict[str, str] = {}
    for layer in layers:
        if not layer:
            continue
        for key, value in layer.items():
            if key == "date_source":
                continue
            if value:
                if key in ("album", "album_artist") and value != out.get(key) and "release_id" not in layer:
                    out.pop("release_id", None)
                out[key] = value
                if key == "date":
                    if layer.get("date_source"):
                        out["date_source"] = layer["date_source"]
                    else:
                        out.pop("date_source", None)
    return out


def fma_tracks(path: str | Path) -> list[Any]:
    """Every track of FMA's ``tracks.csv`` (a file, or a folder holding it) as a
    :class:`~melodex.datasets.base.Track`, whether or not its audio is here.

    Unlike :func:`melodex.datasets.load_dataset`, no audio folder is needed and tracks without
    ``genre_top`` are kept (their genre stays missing): this is a catalogue to look files up in
    (by their 6-digit FMA file name). ``date`` is ``album.date_released``, else
    ``track.date_created``, with ``date_source`` naming the column. ``path`` is the FMA-relative
    ``<id>[:3]/<id>.mp3``.
    """

    path = Path(path)
    csv_path = path / "tracks.csv" if path.is_dir() else path
    if not csv_path.is_file():
        raise DatasetError(f"{csv_path}: not found (FMA's tracks.csv; pass the file or the fma_metadata folder)")
    frame = load_tracks(csv_path)

    def column(group: str, name: str) -> list[Any]:
        if (group, name) not in frame.columns:
            return [None] * len(frame)
        return [None if pd.isna(v) else v for v in frame[group, name]]

    genre, artist, artist_id = column("track", "genre_top"), column("artist", "name"), column("artist", "id")
    title, album, album_id = column("track", "title"), column("album", "title"), column("album", "id")
    released, created = column("album", "date_released"), column("track", "date_created")
    out = []
    for i, tid in enumerate(frame.index):
        date, source = None, None
        for value, name in ((released[i], "album.date_released"), (created[i], "track.date_created")):
            if value is not None:
                date, source = normalize_date(pd.Timestamp(value).strftime("%Y-%m-%d")), name
                break
        out.append(Track(key=f"{int(tid):06d}", path=audio_path("", tid), label=_clean(genre[i]),
                         artist=_clean(artist[i]), artist_id=_id_text(artist_id[i]), title=_clean(title[i]),
                         album=_clean(album[i]), date=date, date_source=source,
                         extra={"album_id": _id_text(album_id[i])} if album_id[i] is not None else {}))
    return out


def release_identity(fields: Mapping[str, Any]) -> str | None:
    """The ``release_id`` of a track's merged fields (see the module docstring), or None.

    An explicit one (FMA's album id, a manifest's ``album_id``) wins; otherwise one is made of
    the album title, the album artist (else the artist) and the year, in lower case with
    spaces collapsed. No album title and no explicit id: None (a track is not a release).
    """
    explicit = _clean(fields.get("release_id"))
    if explicit:
        return explicit
    album = _clean(fields.get("album"))
    if not album:
        return None
    by = _clean(fields.get("album_artist")) or _clean(fields.get("artist")) or ""
    year = year_of(fields.get("date"))
    parts = [_SPACES.sub(" ", part).casefold() for part in (album, by)]
    return f"{TITLE_RELEASE}{parts[0]}|{parts[1]}|{'' if year is None else year}"


def _id_text(value: Any) -> str | None:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return _clean(value)
