"""Playlist files for media players: M3U8, XSPF and JSON, each written atomically.

* M3U8 (UTF-8 extended M3U): ``#EXTM3U``, a ``#PLAYLIST`` name, then per track
  ``#EXTINF:<whole seconds>,<artist> - <title>`` and the file's path relative to the playlist's
  folder (forward slashes), so the folder can move with the music. ``-1`` seconds when unknown.
* XSPF version 1 (https://xspf.org/spec): ``<location>`` is a relative URI (percent-encoded),
  ``<identifier>`` the track id as ``melodex:track:<id>``, ``<duration>`` in milliseconds.
* JSON: the name, the kind and per track its id, metadata and distances (no paths).

A writer is a tiny class with an ``extension`` and a ``render(playlist, collection, folder)``
that returns the text; :func:`write_playlist` picks one by format name and writes through
:func:`melodex.util.atomic.atomic_write`, so a crash never leaves half a playlist.
"""

from __future__ import annotations

import json
import math
import os
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from urllib.parse import quote

from melodex.analysis.collection import Collection
from melodex.analysis.playlists import Playlist
from melodex.errors import OutputError
from melodex.util.atomic import atomic_write, output_errors

XSPF_NS = "http://xspf.org/ns/0/"
FORMATS = ("m3u8", "xspf", "json")


def relative_location(path: str, folder: Path) -> str:
    """``path`` relative to ``folder`` with forward slashes (absolute when no relative path exists,
    as between two Windows drives)."""
    try:
        return Path(os.path.relpath(path, folder)).as_posix()
    except ValueError:
        return Path(path).as_posix()


def _display(collection: Collection, row: int) -> str:
    parts = [p for p in (collection.artists[row], collection.titles[row]) if p]
    return _one_line(" - ".join(parts) if parts else Path(str(collection.paths[row])).stem)


def _one_line(text: str) -> str:
    return re.sub(r"[\r\n]+", " ", str(text))


class M3U8Writer:
    extension = ".m3u8"

    def render(self, playlist: Playlist, collection: Collection, folder: Path) -> str:
        lines = ["#EXTM3U", "#PLAYLIST:" + _one_line(playlist.name)]
        for row in playlist.rows:
            seconds = collection.durations[row]
            lines.append(f"#EXTINF:{-1 if math.isnan(seconds) else round(float(seconds))},{_display(collection, row)}")
            lines.append(relative_location(str(collection.paths[row]), folder))
        return "\n".join(lines) + "\n"


class XSPFWriter:
    extension = ".xspf"

    def render(self, playlist: Playlist, collection: Collection, folder: Path) -> str:
        ET.register_namespace("", XSPF_NS)
        root = ET.Element(f"{{{XSPF_NS}}}playlist", {"version": "1"})
        ET.SubElement(root, f"{{{XSPF_NS}}}title").text = playlist.name
        ET.SubElement(root, f"{{{XSPF_NS}}}creator").text = "Melodex"
        track_list = ET.SubElement(root, f"{{{XSPF_NS}}}trackList")
        for row in playlist.rows:
            track = ET.SubElement(track_list, f"{{{XSPF_NS}}}track")
            location = relative_location(str(collection.paths[row]), folder)
            ET.SubElement(track, f"{{{XSPF_NS}}}location").text = quote(location, safe="/:")
            ET.SubElement(track, f"{{{XSPF_NS}}}identifier").text = f"melodex:track:{quote(collection.track_ids[row])}"
            for tag, value in (("title", collection.titles[row]), ("creator", collection.artists[row])):
                if value:
                    ET.SubElement(track, f"{{{XSPF_NS}}}{tag}").text = str(value)
            seconds = collection.durations[row]
            if not math.isnan(seconds):
                ET.SubElement(track, f"{{{XSPF_NS}}}duration").text = str(round(seconds * 1000))
        ET.indent(root)
        return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


class JSONWriter:
    extension = ".json"

    def render(self, playlist: Playlist, collection: Collection, folder: Path) -> str:
        return json.dumps(playlist_document(playlist, collection), indent=2, ensure_ascii=False) + "\n"


def playlist_document(playlist: Playlist, collection: Collection) -> dict:
    """The JSON form of ``playlist``: name, kind, and per track id, metadata, step and anchor
    distances. The serve API answers with it too; it never holds a path."""
    tracks = []
    for row, step, anchor in zip(playlist.rows, playlist.steps, playlist.anchors):
        tracks.append({**collection.describe(row), "step": step, "anchor": anchor})
    return {"name": playlist.name, "kind": playlist.kind, "tracks": tracks}


WRITERS = {"m3u8": M3U8Writer, "xspf": XSPFWriter, "json": JSONWriter}


def get_writer(fmt: str):
    """The writer for format name ``fmt`` (one of :data:`FORMATS`)."""
    try:
        return WRITERS[fmt.lower()]()
    except KeyError:
        raise OutputError(f"unknown playlist format {fmt!r}; choose from {', '.join(FORMATS)}") from None


def write_playlist(playlist: Playlist, collection: Collection, path: str | Path, fmt: str | None = None) -> Path:
    """Write ``playlist`` to ``path`` in ``fmt`` (default: from the extension); returns the path."""
    path = Path(path)
    writer = get_writer(fmt or path.suffix.lstrip(".") or "m3u8")
    text = writer.render(playlist, collection, path.resolve().parent)
    with output_errors(path), atomic_write(path, "w", encoding="utf-8", newline="\n") as handle:
        handle.write(text)
    return path


def safe_filename(name: str, limit: int = 80) -> str:
    """``name`` made safe as a file name on every system (no separators, no control characters)."""
    cleaned = re.sub(r'[\\/:*?"<>|\x00-\x1f]+', " ", name)
    cleaned = re.sub(r"\s+", " ", cleaned).strip(" .")
    return cleaned[:limit].rstrip(" .") or "playlist"
