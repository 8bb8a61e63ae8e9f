"""The tags of the user's own files, read with mutagen, every value kept.

* **ID3** (mp3, and ID3 chunks in wav): ``TPE1`` artist, ``TPE2`` album artist, ``TIT2``,
  ``TALB``, ``TDRC``/``TYER`` date, else a ``TXXX`` frame named ``year``/``date`` (what
  ffmpeg's ``-metadata year=`` writes), ``TCON`` genre (ID3v1 numbers expanded by mutagen);
* **Vorbis comments** (flac, ogg), any letter case: ``ARTIST``, ``ALBUMARTIST``, ``TITLE``,
  ``ALBUM``, ``DATE`` else ``YEAR``, ``GENRE``;
* **MP4 atoms** (m4a): ``©ART``, ``aART``, ``©nam``, ``©alb``, ``©day``, ``©gen``;
* the **RIFF** ``LIST/INFO`` chunk of a wav (``IART``, ``INAM``, ``IPRD``, ``ICRD``, ``IGNR``).

**Several values.** A multi-valued frame (ID3v2.4's NUL-separated text, repeated Vorbis
comments, MP4 lists) and a ``;``-separated value (``Sigur Ros; Jonsi``) both mean several
artists or genres: the display string joins the frames with ``"; "`` (a single frame is kept
as written) and :func:`split_values` gives the list the store keeps beside it.

**Legacy 8-bit text.** RIFF INFO has no declared encoding: UTF-8 is tried first, then
Windows-1252 (what Windows tools write), then Latin-1, which never fails, so no value becomes
replacement characters. ID3 frames declared Latin-1 that hold Windows-1252 punctuation (bytes
0x80-0x9F, read as C1 control characters) are re-read as Windows-1252.

Reading never raises: a broken or absurd tag block gives an empty result and a debug message.
"""

from __future__ import annotations

import datetime as _dt
import logging
import re
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import mutagen

log = logging.getLogger(__name__)

TAG_FIELDS = ("artist", "album_artist", "title", "album", "date", "genre")
MULTI_VALUED = ("artist", "album_artist", "genre")  # fields whose frames are joined, not cut to the first
MAX_TAG_CHARS = 500  # longer values are cut: a tag is a name, not a document
MAX_VALUES = 50  # values kept per multi-valued field
SEPARATOR = "; "  # joins several values into the display string
_RIFF_INFO = {b"IART": "artist", b"INAM": "title", b"IPRD": "album", b"ICRD": "date", b"IGNR": "genre"}
_ID3_FRAMES = {"TPE1": "artist", "TPE2": "album_artist", "TIT2": "title", "TALB": "album", "TDRC": "date",
               "TYER": "date", "TCON": "genre"}
_ID3_TXXX_DATES = ("date", "year", "release date", "originaldate", "originalyear")  # TXXX descriptions, any case
_KEYS = {  # Vorbis comment names (any case) and MP4 atoms, in the order they are tried
    "artist": ("artist", "©ART"),
    "album_artist": ("albumartist", "album artist", "album_artist", "aART"),
    "title": ("title", "©nam"),
    "album": ("album", "©alb"),
    "date": ("date", "year", "originaldate", "originalyear", "©day"),
    "genre": ("genre", "©gen"),
}
_DATE_RE = re.compile(r"^\s*(\d{4})(?:[-/.](\d{1,2})(?:[-/.](\d{1,2}))?)?")
_C1 = re.compile("[\x80-\x9f]")
_SPLIT = re.compile(r"[;\x00]")


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


def decode_legacy(data: bytes) -> str:
    """Text of undeclared encoding: UTF-8, else Windows-1252, else Latin-1 (which always works)."""
    for encoding in ("utf-8", "cp1252"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    return data.decode("latin-1")


def _repair_c1(text: str) -> str:
    """Latin-1-decoded Windows-1252 (C1 controls where ``’`` or ``€`` were meant), re-read as Windows-1252."""
    if not _C1.search(text):
        return text
    try:
        return text.encode("latin-1").decode("cp1252")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return text


def clean(value: Any, *, multi: bool = False) -> str | None:
    """A tag value as one trimmed string, or None when empty.

    A list gives its first non-empty value, or, with ``multi=True``, all of them joined by
    ``"; "``. NULs become spaces (separators with ``multi``); the result is cut to :data:`MAX_TAG_CHARS`.
    """
    if isinstance(value, (list, tuple)):
        texts = [t for t in (clean(v, multi=multi) for v in value[:MAX_VALUES]) if t]
        if not texts:
            return None
        value = SEPARATOR.join(texts) if multi else texts[0]
    if value is None:
        return None
    text = str(value)
    if multi and "\x00" in text:  # NUL-separated values (ID3v2.4) that reached us unsplit
        text = SEPARATOR.join(part.strip() for part in text.split("\x00") if part.strip())
    text = text.replace("\x00", " ").strip()[:MAX_TAG_CHARS].strip()
    return text or None


def split_values(text: str | None) -> list[str] | None:
    """The values of a display string: ``"Sigur Ros; Jonsi"`` -> ``["Sigur Ros", "Jonsi"]``.

    Split at ``;``, trimmed, empty and repeated values dropped (order kept); None for no value.
    """
    if text is None:
        return None
    out: list[str] = []
    for part in _SPLIT.split(str(text)):
        part = part.strip()[:MAX_TAG_CHARS].strip()
        if part and part not in out:
            out.append(part)
        if len(out) >= MAX_VALUES:
            break
    return out or None


def finish(raw: Mapping[str, Any], fields: tuple[str, ...] = TAG_FIELDS, source: str = "tags") -> dict[str, str]:
    """Clean values, normalise the date (its ``date_source`` is ``source``), drop what is empty."""
    out: dict[str, str] = {}
    for name in fields:
        value = clean(raw.get(name), multi=name in MULTI_VALUED)
        if name == "date":
            value = normalize_date(value)
        if value:
            out[name] = value
    if "date" in out:
        out["date_source"] = source
    return out


def read_tags(path: str | Path) -> dict[str, str]:
    """The artist/album_artist/title/album/date/genre tags of an audio file; ``{}`` when none.

    Keys present only when the file states them; ``date`` is ISO and comes with
    ``date_source="tags"``; several artists or genres are joined by ``"; "``. Never raises:
    an unreadable file or tag block gives ``{}``.
    """
    path = Path(path)
    raw: dict[str, Any] = {}
    try:
        audio = mutagen.File(str(path))
        tags = getattr(audio, "tags", None) if audio is not None else None
        if tags is not None:
            raw = _from_id3(tags) if hasattr(tags, "getall") else _from_mapping(tags)
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
        return finish(raw)
    except Exception as exc:  # pragma: no cover - defensive: odd value types
        log.debug("%s: tags unusable (%s)", path, exc)
        return {}


def _from_id3(tags: Any) -> dict[str, Any]:
    """Field -> value(s) from raw ID3 frames (mp3, wav, aiff)."""
    raw: dict[str, Any] = {}
    for frame_id, name in _ID3_FRAMES.items():
        frames = tags.getall(frame_id)
        if frames and name not in raw:
            frame = frames[0]
            raw[name] = list(frame.genres) if frame_id == "TCON" else [str(t) for t in frame.text]
            if getattr(frame, "encoding", None) == 0:  # declared Latin-1, often Windows-1252 in fact
                raw[name] = [_repair_c1(t) for t in raw[name]]
    if not normalize_date(clean(raw.get("date"))):
        for frame in tags.getall("TXXX"):
            if str(frame.desc).strip().casefold() in _ID3_TXXX_DATES and normalize_date(clean(list(frame.text))):
                raw["date"] = [str(t) for t in frame.text]
                break
    return raw


def _from_mapping(tags: Any) -> dict[str, Any]:
    """Field -> value(s) from Vorbis comments (keys in any case) or MP4 atoms."""
    raw: dict[str, Any] = {}
    for name, keys in _KEYS.items():
        for key in keys:
            try:
                value = tags.get(key)
            except Exception:  # a mapping may refuse a key it cannot hold (``©`` in a Vorbis name)
                value = None
            if value and (name != "date" or normalize_date(clean(value))):
                raw[name] = value
                break
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
            decoded = decode_legacy(text) if text else ""
            if decoded.strip():
                out[_RIFF_INFO[key]] = decoded
    return out
