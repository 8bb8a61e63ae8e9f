"""Serve a library's map page and its indexed audio over HTTP, on 127.0.0.1 by default.

``melodex serve --store DIR`` answers these requests and nothing else:

* ``/`` (or ``/index.html``): the interactive map, made from the store when the server starts;
* ``/audio/<track_id>``: the audio file the store records for that track id, with HTTP Range
  support so the page's ``<audio>`` element can seek;
* ``/api/similar/<track_id>?k=10``, ``/api/path?from=ID&to=ID&length=10`` and
  ``/api/playlist?seed=ID[&seed=ID]&length=20&max_per_artist=2``: JSON for media players;
* anything else: 404.

The URL never names a file: a track id is looked up in the store, so no path traversal is possible
and only files that were indexed can be read. The server has no authentication; binding to an
address other than loopback makes your audio files readable by anyone who can reach it.
"""

from __future__ import annotations

import argparse

from melodex.commands.options import add_store
from melodex.constants import DEFAULT_HOST, DEFAULT_PORT, MAP_COLOR_CHOICES


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_store(parser)
    parser.add_argument("--host", default=DEFAULT_HOST,
                        help=f"address to listen on (default {DEFAULT_HOST}: this computer only)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT,
                        help=f"port (default {DEFAULT_PORT}; 0 picks a free one)")
    parser.add_argument("--color-by", "--color_by", dest="color_by", choices=MAP_COLOR_CHOICES, default=None,
                        help="initial colouring of the map (default: the tag genre, else the predicted genre, "
                             "else the artist, else the folder, as 'melodex map' chooses)")
    parser.add_argument("--title", default="Melodex map", help="title of the page")


def run(args: argparse.Namespace) -> int:
    from melodex.analysis.serve import make_server
    from melodex.commands.options import open_store

    server = make_server(open_store(args.store), host=args.host, port=args.port, title=args.title,
                         color_by=args.color_by)
    host, port = server.server_address[:2]
    shown = f"[{host}]" if ":" in str(host) else host
    print(f"serving the map at http://{shown}:{port}/ (Ctrl-C stops)", flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return 0
