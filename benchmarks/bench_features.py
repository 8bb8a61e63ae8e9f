"""Decode + MFCC throughput: Melodex against librosa, and against raw decoding.

For N 30-s 44.1 kHz stereo mp3 clips (generated once, kept in a cache folder), measured in
this one process and run:

* baseline  ``librosa.load(path, sr=22050, duration=30)`` + ``librosa.feature.mfcc`` (the
  common recipe; OPENBLAS_NUM_THREADS=1, its fast setting);
* ceiling   raw decoding alone with soundfile (``sf.read``), no resampling, no features;
* melodex   ``load_audio(duration=30)`` -> ``first_segment`` -> ``compute_mfcc``, the path
  preprocessing and inference take, on one core and on every core (process pool).

Usage: ``python benchmarks/bench_features.py [--files 60] [--repeat 2] [--cache DIR]``
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from concurrent.futures import ProcessPoolExecutor  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402


def make_clips(folder: Path, n: int, seconds: float = 30.0, sr: int = 44100) -> list[Path]:
    """Write ``n`` music-like stereo mp3 clips once; later runs reuse them."""
    from melodex.audio.encode import write_audio

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        path = folder / f"clip_{i:04d}.mp3"
        if not path.exists():
            rng = np.random.default_rng(i)
            t = np.arange(int(seconds * sr)) / sr
            y = sum(np.sin(2 * np.pi * f * t) for f in rng.uniform(100, 1500, 4)) * 0.08
            y += 0.3 * (np.sin(2 * np.pi * rng.uniform(1, 3) * t) > 0.9) * rng.standard_normal(t.size)
            stereo = np.stack([y, np.roll(y, 100)], axis=1) + 0.01 * rng.standard_normal((t.size, 2))
            write_audio(path, np.clip(stereo, -1, 1), sr)
        paths.append(path)
    return paths


def baseline(path: Path) -> np.ndarray:
    import librosa

    from melodex.constants import FMAX, TOP_DB

    y, sr = librosa.load(path, sr=22050, duration=30)
    mel = librosa.feature.melspectrogram(y=y, sr=sr, n_fft=2048, hop_length=1024, fmax=FMAX)
    return librosa.feature.mfcc(S=librosa.power_to_db(mel, top_db=TOP_DB), n_mfcc=20)


def ceiling(path: Path) -> np.ndarray:
    import soundfile as sf

    return sf.read(path, dtype="float32")[0]


def melodex(path: Path) -> np.ndarray:
    from melodex.audio.decode import load_audio
    from melodex.audio.segments import first_segment
    from melodex.constants import SEGMENT_SECONDS
    from melodex.features.mfcc import compute_mfcc

    return compute_mfcc(first_segment(load_audio(path, duration=SEGMENT_SECONDS)).audio)


def _init_worker() -> None:
    import torch

    torch.set_num_threads(1)


def rate(fn, paths: list[Path], repeat: int) -> float:
    """Files per second, best of ``repeat`` passes after one warm-up file."""
    fn(paths[0])
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for p in paths:
            fn(p)
        best = min(best, time.perf_counter() - start)
    return len(paths) / best


def pool_rate(paths: list[Path], workers: int, repeat: int) -> float:
    with ProcessPoolExecutor(workers, initializer=_init_worker) as pool:
        list(pool.map(melodex, paths[:workers]))  # warm every worker
        best = float("inf")
        for _ in range(repeat):
            start = time.perf_counter()
            list(pool.map(melodex, paths, chunksize=4))
            best = min(best, time.perf_counter() - start)
    return len(paths) / best


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=60, help="number of 30-s clips")
    parser.add_argument("--repeat", type=int, default=2, help="passes per method (best is kept)")
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "melodex-bench-clips")
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    paths = make_clips(args.cache, args.files)
    ref = baseline(paths[0])
    ours = melodex(paths[0])
    err = float(np.abs(ref[:, : ours.shape[1]] - ours).max())

    base = rate(baseline, paths, args.repeat)
    ceil = rate(ceiling, paths, args.repeat)
    one = rate(melodex, paths, args.repeat)
    cores = os.cpu_count() or 1
    many = pool_rate(paths, cores, args.repeat) if cores > 1 else one

    print(f"{len(paths)} clips of 30 s, 44.1 kHz stereo mp3; max |MFCC - librosa| = {err:.2e}")
    print(f"{'method':<42}{'files/s':>9}{'x baseline':>12}{'% ceiling':>11}")
    rows = [
        ("librosa load+mfcc (baseline, 1 core)", base),
        ("soundfile raw decode (ceiling, 1 core)", ceil),
        ("melodex decode+mfcc (1 core)", one),
        (f"melodex decode+mfcc ({cores} processes)", many),
    ]
    for name, r in rows:
        print(f"{name:<42}{r:>9.1f}{r / base:>12.2f}{100 * r / ceil:>10.0f}%")
    print(f"scaling {cores} cores vs 1: {many / one:.2f}x")


if __name__ == "__main__":
    main()
