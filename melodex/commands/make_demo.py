"""Write the synthetic demo corpus in FMA's layout, so every Melodex command runs without a download.

Layout written under ``--out`` (default ``demo_data``)::

    demo_data/fma_metadata/tracks.csv    # FMA's three header lines and 52 columns
    demo_data/fma_small/000/000002.mp3   # 22050 Hz mono mp3 clips, 30 s by default
    demo_data/demo_truth.json            # the ground truth: styles, artists, per-track style mix

The music is clearly synthetic: five made-up styles, three
artists per style whose albums are spread over 2005-2016, and one extra artist, "Drift Machine",
whose music moves on purpose from one style to another: its tracks are singles released at
regular intervals and the weight of the second style rises linearly with the date (0 for the
first release, 1 for the last). The label (``genre_top``) of a mixed track is its heavier style.
The split is stratified by label, about 70/15/15, and the whole corpus is a pure function of
the seed: same seed, same ``tracks.csv``, same mp3 bytes, whatever the number of workers.

Run ``melodex make-demo --out demo_data`` (or ``python -m melodex make-demo``); then
``--data_dir demo_data/fma_small`` works wherever FMA-small does.
"""

from __future__ import annotations

import argparse
import json
import shlex
import time

from melodex.commands.options import positive_int
from melodex.constants import (
    DEFAULT_DEMO_DATA,
    DEMO_ARTISTS,
    DEMO_SECONDS,
    DEMO_SECONDS_RANGE,
    DEMO_TRACKS_PER_ARTIST,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", "--out_dir", dest="out", default=DEFAULT_DEMO_DATA, metavar="DIR",
                        help="folder to write into (default: %(default)s)")
    add_corpus_arguments(parser, seed_help="random seed; the same seed writes the same corpus (default: %(default)s)")
    parser.add_argument("--workers", type=positive_int, default=None,
                        help="processes (default: the number of CPU cores)")


def add_corpus_arguments(parser: argparse.ArgumentParser, *, seed_help: str) -> None:
    """The flags that shape the corpus, shared with ``melodex demo``: its size, clip length and seed."""
    parser.add_argument("--tracks-per-artist", "--tracks_per_artist", dest="tracks_per_artist", type=positive_int,
                        default=DEMO_TRACKS_PER_ARTIST, metavar="N",
                        help=f"tracks per artist; {DEMO_ARTISTS} artists (default: %(default)s, so "
                             f"{DEMO_ARTISTS * DEMO_TRACKS_PER_ARTIST} tracks)")
    low, high = DEMO_SECONDS_RANGE
    parser.add_argument("--seconds", type=clip_seconds, default=DEMO_SECONDS, metavar="S",
                        help=f"clip length in seconds, {low:g} to {high:g} (default: %(default)g)")
    parser.add_argument("--seed", type=int, default=0, help=seed_help)


def clip_seconds(text: str) -> float:
    """A clip length in seconds within :data:`DEMO_SECONDS_RANGE`."""
    low, high = DEMO_SECONDS_RANGE
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not low <= value <= high:  # NaN fails this too
        raise argparse.ArgumentTypeError(f"must be between {low:g} and {high:g} seconds, not {text}")
    return value


def run(args: argparse.Namespace) -> int:
    from melodex.demo.corpus import write_demo_corpus

    start = time.perf_counter()
    out = write_demo_corpus(
        args.out,
        tracks_per_artist=args.tracks_per_artist,
        seconds=args.seconds,
        seed=args.seed,
        workers=args.workers,
        progress=False if args.quiet else None,
    )
    truth = json.loads((out / "demo_truth.json").read_text())
    counts = f"{len(truth['styles'])} styles, {len(truth['artists'])} artists"
    print(f"wrote {len(truth['tracks'])} tracks ({counts}) to {out} in {time.perf_counter() - start:.1f} s")
    print(f"train with: {shlex.join(['melodex', 'train', '--data_dir', str(out / 'fma_small')])}")
    return 0
