"""Playlists from a library store: an instant mix, a path between two songs, or clusters.

  melodex playlist --seed 000123 --length 20 --out mix.m3u8
  melodex playlist --seed 000123 --seed 000456 --max-per-artist 1 --out mix --format m3u8 xspf json
  melodex playlist --from 000123 --to 000789 --length 12 --out path.xspf
  melodex playlist --clusters 8 --out playlists/          # or --clusters auto (HDBSCAN)

An instant mix starts at the first seed; each next track is close to the previous one and to
the seeds, an artist appears at most --max-per-artist times (default 2) and never twice in a
row, and near-duplicates (the same recording twice) are left out. A path starts at --from, ends
at --to, and walks through the tracks in between in small steps, none twice. --clusters writes
one playlist per cluster into a folder, each named by its main genre and artists.

M3U8 files list paths relative to the playlist's folder with #EXTINF (seconds, "artist - title");
XSPF follows version 1 of the spec; JSON lists track ids and distances. Files are written
atomically. Tracks are named by their track_id in the store (see 'melodex similar').
"""

from __future__ import annotations

import argparse
from pathlib import Path

from melodex.commands.options import add_store, positive_int

FORMATS = ("m3u8", "xspf", "json")


def _clusters(text: str) -> int | None:
    return None if text == "auto" else positive_int(text)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_store(parser)
    way = parser.add_argument_group("how to build it (one of)")
    way.add_argument("--seed", action="append", metavar="TRACK", help="instant mix around this track_id (repeatable)")
    way.add_argument("--from", dest="start", metavar="TRACK", help="path: the first track (with --to)")
    way.add_argument("--to", dest="end", metavar="TRACK", help="path: the last track (with --from)")
    way.add_argument("--clusters", type=_clusters, metavar="K|auto", default=False,
                     help="split the collection into K playlists (KMeans) or 'auto' (HDBSCAN)")
    parser.add_argument("--length", type=positive_int, default=20, metavar="N",
                        help="tracks in a mix or path, its ends included (default 20)")
    parser.add_argument("--max-per-artist", "--max_per_artist", dest="max_per_artist", type=positive_int,
                        default=2, metavar="N", help="instant mix: tracks per artist at most (default 2; "
                                                     "never two in a row)")
    parser.add_argument("--out", required=True, metavar="PATH",
                        help="the playlist file (its extension picks the format), or a folder for --clusters")
    parser.add_argument("--format", nargs="+", choices=FORMATS, metavar="FMT",
                        help=f"one or more of {', '.join(FORMATS)} (default: from --out's extension, else m3u8)")


def run(args: argparse.Namespace) -> int:
    from melodex.analysis.collection import Collection
    from melodex.analysis.playlists import cluster_playlists, instant_mix, path_between
    from melodex.commands.options import open_store
    from melodex.errors import QueryError

    ways = [bool(args.seed), args.start is not None or args.end is not None, args.clusters is not False]
    if sum(ways) != 1:
        raise QueryError("give exactly one of --seed, --from/--to or --clusters")
    if ways[1] and (args.start is None or args.end is None):
        raise QueryError("a path needs both --from and --to")
    collection = Collection.from_store(open_store(args.store))
    if ways[2]:
        return _write_clusters(cluster_playlists(collection, args.clusters), collection, Path(args.out), args.format)
    if ways[0]:
        playlist = instant_mix(collection, args.seed, args.length, max_per_artist=args.max_per_artist)
    else:
        playlist = path_between(collection, args.start, args.end, args.length)
    for path in _targets(Path(args.out), args.format):
        _write(playlist, collection, path)
    _show(playlist, collection)
    return 0


def _targets(out: Path, formats: list[str] | None) -> list[Path]:
    """The files to write: ``out`` itself, or ``out`` with each format's extension."""
    suffix = out.suffix.lower().lstrip(".")
    if not formats:
        return [out if suffix in FORMATS else out.with_name(out.name + ".m3u8")]
    stem = out.with_suffix("") if suffix in FORMATS else out
    return [stem.with_name(f"{stem.name}.{fmt}") for fmt in formats]


def _write(playlist, collection, path: Path) -> None:
    from melodex.analysis.playlist_files import write_playlist

    write_playlist(playlist, collection, path)
    print(f"wrote {path} ({len(playlist)} tracks)")


def _write_clusters(playlists, collection, folder: Path, formats: list[str] | None) -> int:
    from melodex.analysis.playlist_files import safe_filename

    for number, playlist in enumerate(playlists, start=1):
        base = folder / f"{number:02d} {safe_filename(playlist.name)}"
        for fmt in formats or ["m3u8"]:
            _write(playlist, collection, base.with_name(f"{base.name}.{fmt}"))
    print(f"{len(playlists)} playlists in {folder}")
    return 0


def _show(playlist, collection) -> None:
    print(playlist.name)
    for number, (row, step) in enumerate(zip(playlist.rows, playlist.steps), start=1):
        who = " - ".join(x for x in (collection.artists[row], collection.titles[row]) if x)
        print(f"{number:3d}. {collection.track_ids[row]}  {who}  (step {step:.4f})")
