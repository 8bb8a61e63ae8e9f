"""Preprocessing and training epoch time: from the MFCC cache against decoding on the fly.

On a dataset (default: the demo corpus, written once to ``--data_dir`` when missing), measured
in this run:

* preprocess  ``preprocess_dataset`` into a fresh cache with every core;
* baseline    one training epoch decoding audio on the fly (no cache), DataLoader workers;
* cached      the same epoch from the cache (seconds per epoch, and the ratio to the baseline).

The epoch time is read from history.csv (training + validation). The load average is printed
with the numbers, since other work on the machine slows every line alike.

Usage: ``python benchmarks/bench_train.py [--data_dir demo_bench] [--tracks_per_artist 18]``
"""

from __future__ import annotations

import argparse
import csv
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path


def epoch_seconds(run_dir: Path) -> float:
    with open(run_dir / "history.csv", newline="") as handle:
        return float(list(csv.DictReader(handle))[-1]["seconds"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data_dir", default="demo_bench", help="dataset; a demo corpus is written here if missing")
    parser.add_argument("--tracks_per_artist", type=int, default=18, help="demo corpus size (16 artists)")
    parser.add_argument("--batch_size", type=int, default=32)
    args = parser.parse_args()

    from melodex.datasets import load_dataset
    from melodex.demo.corpus import write_demo_corpus
    from melodex.training.config import TrainConfig
    from melodex.training.preprocess import preprocess_dataset
    from melodex.training.trainer import train

    logging.basicConfig(level=logging.WARNING)
    data = Path(args.data_dir)
    if not data.exists():
        write_demo_corpus(data, tracks_per_artist=args.tracks_per_artist, seconds=30.0, seed=0)
    dataset = load_dataset(data)
    sizes = dataset.split_sizes()
    with tempfile.TemporaryDirectory() as tmp:
        cache, out = Path(tmp) / "cache", Path(tmp) / "runs"
        started = time.perf_counter()
        preprocess_dataset(dataset, cache, progress=False)
        pre = time.perf_counter() - started
        common = dict(data_dir=data, epochs=1, batch_size=args.batch_size, device="cpu", output_dir=out,
                      progress=False)
        baseline = epoch_seconds(train(TrainConfig(cache_dir=None, **common)).run_dir)
        cached = epoch_seconds(train(TrainConfig(cache_dir=cache, **common)).run_dir)
        shutil.rmtree(out, ignore_errors=True)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"{len(dataset)} tracks ({sizes['training']} training, {sizes['validation']} validation), "
          f"{os.cpu_count()} cores, load average {load:.1f}")
    print(f"preprocess          {pre:7.1f} s  ({1000 * pre / len(dataset):.0f} ms a track)")
    print(f"epoch, on the fly   {baseline:7.1f} s  (baseline)")
    print(f"epoch, from cache   {cached:7.1f} s  ({baseline / cached:.1f}x faster; "
          f"{1000 * cached / sizes['training']:.0f} ms a training track)")


if __name__ == "__main__":
    main()
