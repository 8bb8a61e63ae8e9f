"""TODO docstring."""

from __future__ import annotations

import argparse
import json
import time

from melodex.demo.corpus import write_demo_corpus


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out",
        "--out_dir",
        dest="out",
        default="demo_data",
        help="folder to write into (default: demo_data)",
    )
    parser.add_argument(
        "--tracks-per-artist",
        "--tracks_per_artist",
        dest="tracks_per_artist",
        type=int,
        default=18,
        help="tracks per artist; 16 artists (default 18: 288 tracks)",
    )
    parser.add_argument("--seconds", type=float, default=30.0, help="clip length in seconds (default 30)")
    parser.add_argument(
        "--seed", type=int, default=0, help="random seed; the same seed writes the same corpus"
    )
    parser.add_argument(
        "--workers", type=int, default=None, help="processes (default: the number of CPU cores)"
    )


def run(args: argparse.Namespace) -> int:
    from melodex.errors import DatasetError

    if args.tracks_per_artist < 1:
        raise DatasetError("--tracks-per-artist must be at least 1")
    if not 1.0 <= args.seconds <= 600.0:
        raise DatasetError("--seconds must be between 1 and 600")
    if args.workers is not None and args.workers < 1:
        raise DatasetError("--workers must be at least 1")
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
    print(f"train with: melodex train --data_dir {out / 'fma_small'}")
    return 0
