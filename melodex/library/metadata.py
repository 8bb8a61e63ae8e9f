"""What is known about a track besides its sound: artist, title, album, date, genre.

Three sources, in rising priority:

* **tags** in the user's own files, read with mutagen (``mutagen.File(path, easy=True)``):
  ID3 in mp3 (and in wav), Vorbis comments in flac and ogg, MP4 atoms in m4a, plus the RIFF
  ``LIST/INFO`` chunk of a wav (``IART``, ``INAM``, ``IPRD``, ``ICRD``, ``IGNR``);
* **FMA** metadata (``tracks.csv`` through :func:`melodex.datasets.load_dataset`): artist name
  and id, title, album, ``album.date_released`` falling back to ``track.date_created`` (the
  ``date_source`` says which), ``genre_top``;
* a **manifest** CSV (``path,artist,title,album,date,genre``), whose non-empty cells supply or
  override fields for the files it names.

Dates are normalised to ISO ``YYYY-MM-DD`` or ``YYYY``; a value that is not a date is dropped.
Nothing is invented: a field no source states is absent (None). Reading tags never raises: a
broken or absurd tag block gives an empty result and a debug message.
"""

from __future__ import annotations

import csv
import datetime as _dt
import logging
import re
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import mutagen
import pandas as pd

from melodex.datasets.base import Track
from melodex.datasets.fma import audio_path, load_tracks
from melodex.errors import DatasetError
from melodex.library.store import resolved_path

log = logging.getLogger(__name__)

FIELDS = ("artist", "title", "album", "date", "genre")
MANIFEST_COLUMNS = ("path",) + FIELDS
MAX_TAG_CHARS = 500  # longer values are cut: a tag is a name, not a document
_RIFF_INFO = {b"IART": "artist", b"INAM": "title", b"IPRD": "album", b"ICRD": "date", b"IGNR": "genre"}
_ID3_FRAMES = {"TPE1": "artist", "TIT2": "title", "TALB": "album", "TDRC": "date", "TYER": "date", "TCON": "genre"}
_DATE_RE = re.compile(r"^\s*(\d{4})(?:[-/.](\d{1,2})(?:[-/.](\d{1,2}))?)?")


def normalize_date(value: Any) -> str | None:
    """An ISO ``YYYY-MM-DD`` or ``YYYY`` string from a tag or CSV value, or None.

    ``"2004-05-06T10:00:00"`` -> ``"2004-05-06"``; ``"2004/5/6"`` -> ``"2004-05-06"``;
    ``"2004-05"`` -> ``"2004"`` (no day, so only the year is certain); ``"unknown"`` -> None.
    """
    if value is None:
        return None
    match = _DATE_RE.match(str(value))
    if not match:
        return None
    year = int(match.group(1))
    if not 1000 <= year <= 2999:
        return None
    if match.group(2) and match.group(3):
        try:
            return _dt.date(year, int(match.group(2)), int(match.group(3))).isoformat()
        except ValueError:
            pass
    return f"{year:04d}"


def _clean(value: Any) -> str | None:
    """A tag value as one trimmed string (first of a list), or None when empty."""
    if isinstance(value, (list, tuple)):
        value = next((v for v in value if str(v).strip()), None)
    if value is None:
        return None
    text = str(value).replace("\x00", " ").strip()[:MAX_TAG_CHARS].strip()
    return text or None


def _finish(raw: Mapping[str, Any], source: str = "tags") -> dict[str, str]:
    """Clean values, normalise the date (its ``date_source`` is ``source``), drop what is empty."""
    out: dict[str, str] = {}
    for name in FIELDS:
        value = _clean(raw.get(name))
        if name == "date":
            value = normalize_date(value)
        if value:
            out[name] = value
    if "date" in out:
        out["date_source"] = source
    return out


def read_tags(path: str | Path) -> dict[str, str]:
    """The artist/title/album/date/genre tags of an audio file; ``{}`` when there are none.

    Keys present only when the file states them; ``date`` is ISO and comes with
    ``date_source="tags"``. Never raises: an unreadable file or tag block gives ``{}``.
    """
    path = Path(path)
    raw: dict[str, Any] = {}
    try:
        audio = mutagen.File(str(path), easy=True)
        tags = getattr(audio, "tags", None) if audio is not None else None
        if tags is not None:
            raw = _from_mutagen_tags(tags)
    except Exception as exc:  # mutagen raises many types on broken files; tags are optional
        log.debug("%s: tags unreadable (%s)", path, exc)
        raw = {}
    if path.suffix.lower() == ".wav":
        try:
            for key, value in _riff_info(path).items():
                raw.setdefault(key, value)
        except Exception as exc:  # a damaged RIFF chunk list: keep whatever ID3 gave
            log.debug("%s: RIFF INFO unreadable (%s)", path, exc)
    try:
        return _finish(raw)
    except Exception as exc:  # pragma: no cover - defensive: odd value types
        log.debug("%s: tags unusable (%s)", path, exc)
        return {}


def _from_mutagen_tags(tags: Any) -> dict[str, Any]:
    """Field -> value from an easy tag mapping (EasyID3, Vorbis, EasyMP4) or a raw ID3 (wav)."""
    raw: dict[str, Any] = {}
    if tags.__class__.__name__ == "ID3" or hasattr(tags, "getall"):  # raw ID3 frames (WAVE, AIFF)
        for frame_id, name in _ID3_FRAMES.items():
            frames = tags.getall(frame_id)
            if frames and name not in raw:
                raw[name] = [str(t) for t in frames[0].text]
        return raw
    for name in FIELDS:
        try:
            value = tags.get(name) if hasattr(tags, "get") else None
        except Exception:  # an easy mapping may refuse a key it cannot express
            value = None
        if name == "date" and not value:
            try:
                value = tags.get("year")
            except Exception:
                value = None
        if value:
            raw[name] = value
    return raw


def _riff_info(path: Path, max_chunk: int = 1 << 20) -> dict[str, str]:
    """Fields from a wav file's ``LIST/INFO`` chunk; chunks over ``max_chunk`` bytes are ignored."""
    out: dict[str, str] = {}
    with open(path, "rb") as handle:
        header = handle.read(12)
        if len(header) < 12 or header[:4] != b"RIFF" or header[8:12] != b"WAVE":
            return out
        while True:
            head = handle.read(8)
            if len(head) < 8:
                return out
            chunk_id, size = head[:4], struct.unpack("<I", head[4:])[0]
            if chunk_id == b"LIST" and size <= max_chunk:
                body = handle.read(size)
                if body[:4] == b"INFO":
                    out.update(_parse_info(body[4:]))
            else:
                handle.seek(size, 1)
            if size % 2:
                handle.seek(1, 1)


def _parse_info(body: bytes) -> dict[str, str]:
    out: dict[str, str] = {}
    pos = 0
    while pos + 8 <= len(body):
        key, size = body[pos:pos + 4], struct.unpack("<I", body[pos + 4:pos + 8])[0]
        value = body[pos + 8:pos + 8 + size]
        pos += 8 + size + (size % 2)
        if key in _RIFF_INFO:
            text = value.split(b"\x00", 1)[0]
            decoded = text.decode("utf-8", errors="replace") if text else ""
            if decoded.strip():
                out[_RIFF_INFO[key]] = decoded
    return out


def track_metadata(track: Any) -> dict[str, str]:
    """Fields of a :class:`melodex.datasets.base.Track` (FMA or another catalogue).

    ``genre`` is the track's label (FMA's ``genre_top``); ``date``/``date_source`` as the
    dataset loader resolved them (``album.date_released``, else ``track.date_created``).
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
    return out


def read_manifest(path: str | Path, base_dir: str | Path | None = None) -> dict[str, dict[str, str]]:
    """A manifest CSV (``path,artist,title,album,date,genre``) as resolved path -> fields.

    Only ``path`` is required; empty cells are left out, so they never erase a tag. Relative
    paths are taken from ``base_dir`` (default: the manifest's folder). A manifest ``date``
    gets ``date_source="manifest"``. Raises :class:`DatasetError` when the file cannot be
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
        out[resolved_path(file_path)] = _finish(row, "manifest")
    return out


def merge(*layers: Mapping[str, str] | None) -> dict[str, str]:
    """Later layers override earlier ones field by field; ``date_source`` travels with ``date``."""
    out: dict[str, str] = {}
    for layer in layers:
        if not layer:
            continue
        for key, value in layer.items():
            if key == "date_source":
                continue
            if value:
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
    title, album = column("track", "title"), column("album", "title")
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
                         album=_clean(album[i]), date=date, date_source=source))
    return out


def _id_text(value: Any) -> str | None:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return _clean(value)
