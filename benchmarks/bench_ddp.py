"""Training throughput in one process against ``torchrun --nproc_per_node N`` (DDP, gloo) on the CPU.

On a dataset (default: a small demo corpus, written once to ``--data_dir`` when missing) whose
MFCCs are cached first, measured in this run:

* 1 process     ``python -m melodex train`` (torch's own intra-op threads), and again with
                ``OMP_NUM_THREADS=1`` (one core's worth, torchrun's default per process);
* N processes   ``torchrun --standalone --nproc_per_node N -m melodex train`` (one thread each,
                as torchrun sets it), the same flags: each process takes ``--batch_size`` clips
                a step, so a step sees N times as many clips.

Clips/s is the training clips of an epoch over its seconds in history.csv (training plus
validation, which rank 0 runs alone), from the fastest epoch after the first (warm-up). The ratio to the
one-process figure is printed with the load average, since other work on the machine slows
every line alike.

Usage: ``python benchmarks/bench_ddp.py [--data_dir demo_ddp] [--tracks_per_artist 6] [--processes 2]``
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def best_epoch(run_dir: Path) -> tuple[int, float]:
    """(training clips, seconds) of the run's fastest epoch after the first."""
    with open(run_dir / "history.csv", newline="") as handle:
        seconds = min(float(row["seconds"]) for row in list(csv.DictReader(handle))[1:])
    return json.loads((run_dir / "params.json").read_text())["split_sizes"]["training"], seconds


def train(launcher: list[str], flags: list[str], out: Path, **extra_env: str) -> Path:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""), **extra_env)
    proc = subprocess.run([*launcher, "-m", "melodex", "train", *flags, "--output_dir", str(out), "-q"],
                          env=env, capture_output=True, text=True, check=False)
    if proc.returncode:
        sys.exit(f"training failed:\n{proc.stderr[-2000:]}")
    return (out / "latest").resolve()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data_dir", default="demo_ddp", help="dataset; a demo corpus is written here if missing")
    parser.add_argument("--tracks_per_artist", type=int, default=6, help="demo corpus size (16 artists)")
    parser.add_argument("--batch_size", type=int, default=16, help="clips a step in each process")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--processes", type=int, default=2)
    args = parser.parse_args()

    from melodex.datasets import load_dataset
    from melodex.demo.corpus import write_demo_corpus
    from melodex.training.preprocess import preprocess_dataset

    data = Path(args.data_dir)
    if not data.exists():
        write_demo_corpus(data, tracks_per_artist=args.tracks_per_artist, seconds=30.0, seed=0, progress=False)
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "cache"
        preprocess_dataset(load_dataset(data), cache, progress=False)
        flags = ["--data_dir", str(data), "--cache_dir", str(cache), "--epochs", str(args.epochs), "--batch_size",
                 str(args.batch_size), "--num_workers", "0", "--device", "cpu", "--no-augment"]
        rows = [("1 process", *best_epoch(train([sys.executable], flags, Path(tmp) / "one"))),
                ("1 process, 1 thread", *best_epoch(train([sys.executable], flags, Path(tmp) / "one1",
                                                          OMP_NUM_THREADS="1")))]
        torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
                    str(args.processes)]
        rows.append((f"{args.processes} processes (torchrun)", *best_epoch(train(torchrun, flags, Path(tmp) / "ddp"))))
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"{rows[0][1]} training clips an epoch, batch {args.batch_size} a process, {os.cpu_count()} cores, "
          f"load average {load:.1f}")
    print(f"{'':28s} {'epoch s':>8s} {'clips/s':>8s} {'ratio':>6s}")
    base = rows[0][1] / rows[0][2]
    for name, clips, seconds in rows:
        print(f"{name:28s} {seconds:8.2f} {clips / seconds:8.1f} {clips / seconds / base:6.2f}")


if __name__ == "__main__":
    main()
