"""UMAP map of a library: an interactive HTML page and a static figure.

  melodex map --store melodex_outputs/library                  # fit, or place new tracks
  melodex map --color-by artist --png map.svg --title "My music"
  melodex map --refit --n-neighbors 30 --min-dist 0.05

The first run fits a 2-D UMAP map of every track's embedding and saves the coordinates in the
store; later runs place tracks added since onto that map (as umap-learn's transform does) unless
--refit is given. The same store, settings and seed give the same map; --fast uses every core
and gives up reproducibility. Output: the HTML page (--out) and a .png, .svg or .pdf figure (--png).
"""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

from melodex.commands.options import add_store
from melodex.constants import (
    DEFAULT_MAP_FIGURE,
    DEFAULT_MAP_HTML,
    MAP_COLOR_CHOICES,
    MAP_FIGURE_EXTENSIONS,
    UMAP_DEFAULTS,
)
from melodex.errors import MapError, OutputError

FIGURE_FORMATS = " or ".join(", ".join(MAP_FIGURE_EXTENSIONS).rsplit(", ", 1))  # ".png, .svg or .pdf"

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_store(parser)
    parser.add_argument("--out", default=DEFAULT_MAP_HTML, help=f"interactive HTML map (default {DEFAULT_MAP_HTML})")
    parser.add_argument("--png", "--figure", dest="figure", default=DEFAULT_MAP_FIGURE,
                        help=f"static figure, {FIGURE_FORMATS} by extension (default {DEFAULT_MAP_FIGURE})")
    parser.add_argument("--no-png", "--no-figure", dest="no_figure", action="store_true",
                        help="do not write the static figure")
    parser.add_argument("--color-by", "--color_by", dest="color_by", choices=MAP_COLOR_CHOICES, default=None,
                        help="colouring of the static figure and the page's first colouring (folder: each file's "
                             "parent folder); default: the tag genre, else the predicted genre, else the artist, "
                             "else the folder, whichever the tracks have first; a model without a genre head "
                             "predicts no genre")
    parser.add_argument("--n-neighbors", "--n_neighbors", dest="n_neighbors", type=int, default=None,
                        help=f"UMAP n_neighbors (default {UMAP_DEFAULTS['n_neighbors']}; clamped on tiny stores)")
    parser.add_argument("--min-dist", "--min_dist", dest="min_dist", type=float, default=None,
                        help=f"UMAP min_dist (default {UMAP_DEFAULTS['min_dist']})")
    parser.add_argument("--seed", type=int, default=None,
                        help=f"random seed: same seed, same map (default {UMAP_DEFAULTS['seed']})")
    parser.add_argument("--fast", action="store_true",
                        help="no seed, all cores (n_jobs=-1): faster on big stores, not reproducible")
    parser.add_argument("--refit", action="store_true",
                        help="fit a new map even when one exists (default: place new tracks on it)")
    parser.add_argument("--title", default="Melodex map", help="title of the HTML page")


def run(args: argparse.Namespace) -> int:
    from melodex.analysis.map_figure import write_static_map
    from melodex.analysis.map_page import choose_color_by, map_frame, write_html_map
    from melodex.analysis.mapping import update_map
    from melodex.commands.options import open_store

    if args.n_neighbors is not None and args.n_neighbors < 2:
        raise MapError("--n-neighbors must be at least 2")
    if args.fast and args.seed is not None:
        raise MapError("--fast fits without a seed; drop --seed or --fast")
    if args.min_dist is not None and not 0.0 <= args.min_dist <= 1.0:
        raise MapError("--min-dist must be between 0 and 1")
    _check_outputs(args)
    store = open_store(args.store)
    _, done = update_map(store, refit=args.refit, n_neighbors=args.n_neighbors, min_dist=args.min_dist,
                         seed=args.seed, fast=args.fast)
    if done.startswith("placed 0 "):  # update_map has said what it fitted or placed; say "nothing" too
        log.info("map: up to date, no new tracks to place")
    color_by = choose_color_by(map_frame(store), args.color_by)  # one choice (and warning) for page and figure
    written = [write_html_map(store, args.out, title=args.title, color_by=color_by)]
    if not args.no_figure:
        written.append(write_static_map(store, args.figure, color_by=color_by))
    for path in written:
        print(path)
    return 0


def _check_outputs(args: argparse.Namespace) -> None:
    """Refuse a folder or an unknown figure format before anything is computed or written."""
    outputs = [("--out", args.out)] + ([] if args.no_figure else [("--png", args.figure)])
    for flag, path in outputs:
        if path.endswith(("/", os.sep)) or Path(path).is_dir():
            raise OutputError(f"{path}: {flag} is a folder; give a file name, such as "
                              f"{Path(path) / ('map.html' if flag == '--out' else 'map.png')}")
    if not args.no_figure and Path(args.figure).suffix.lower() not in MAP_FIGURE_EXTENSIONS:
        raise OutputError(f"{args.figure}: --png must end in {FIGURE_FORMATS} (or give --no-png)")
