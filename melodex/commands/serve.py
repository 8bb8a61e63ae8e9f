"""TODO docstring."""

from __future__ import annotations

import argparse
from pathlib import Path

from melodex.analysis.serve import DEFAULT_HOST, DEFAULT_PORT, make_server
from melodex.errors import ServeError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from melodex.analysis.mapping import COLOR_CHOICES, DEFAULT_STORE

    parser.add_argument("--store", default=DEFAULT_STORE,
                        help=f"library store directory (default {DEFAULT_STORE})")
    parser.add_argument("--host", default=DEFAULT_HOST,
                        help=f"address to listen on (default {DEFAULT_HOST}: this computer only)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT,
                        help=f"port (default {DEFAULT_PORT}; 0 picks a free one)")
    parser.add_argument("--color-by", "--color_by", dest="color_by", choices=COLOR_CHOICES, default="genre",
                        help="initial colouring of the map (default genre)")
    parser.add_argument("--title", default="Melodex map", help="title of the page")


def run(args: argparse.Namespace) -> int:
    from melodex.library.store import LibraryStore

    if not Path(args.store).is_dir():
        raise ServeError(f"{args.store}: no library store here; create one with 'melodex index'")
    server = make_server(LibraryStore(args.store), host=args.host, port=args.port, title=args.title,
                         color_by=args.color_by)
    host, port = server.server_address[:2]
    shown = f"[{host}]" if ":" in str(host) else host
    print(f"serving the map at http://{shown}:{port}/ (Ctrl-C stops)", flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return 0
