"""How long the demo corpus takes to write, and where the time goes.

    PYTHONPATH=. python benchmarks/bench_demo_corpus.py [--tracks-per-artist 18] [--workers 2]

Prints (1) the CPU cost of encoding one 30-s clip to mp3 with ``melodex.encode.write_audio``
(libsndfile, the baseline) and with the demo's ``write_mp3`` (LAME -q 9 through PyAV), and of
synthesising a clip of each style, as ratios measured in this run, and (2) wall and CPU seconds
for a full corpus with the machine's load average, since other processes on a shared machine
stretch the wall time far more than the CPU time.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def per_clip(repeats: int = 5) -> None:
    """CPU per 30-s clip: the two mp3 encoders (libsndfile's is the baseline), then synthesis."""
    import numpy as np

    from melodex.audio.encode import write_audio
    from melodex.demo.corpus import SAMPLE_RATE, write_mp3
    from melodex.demo.synth import STYLES, artist_signature, render_track, track_params

    rng = np.random.default_rng(0)
    audio = (0.1 * rng.standard_normal(int(30 * SAMPLE_RATE))).astype(np.float32)
    cost = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, write in (("write_audio (libsndfile)", write_audio), ("write_mp3 (PyAV, -q 9)", write_mp3)):
            write(Path(tmp) / "warm-up.mp3", audio, SAMPLE_RATE)
            start = time.process_time()
            for i in range(repeats):
                write(Path(tmp) / f"{i}.mp3", audio, SAMPLE_RATE)
            cost[name] = (time.process_time() - start) / repeats
            print(f"{name:28s} {cost[name] * 1000:7.1f} ms CPU per 30-s clip")
    base, encode = cost.values()
    print(f"write_mp3 costs {encode / base:.2f}x write_audio")
    for style in STYLES:
        params = {style: track_params(style, artist_signature(style, rng), rng)}
        start = time.process_time()
        for _ in range(repeats):
            render_track(
                {style: 1.0}, params, seconds=30.0, sr=SAMPLE_RATE, rng=rng, noise_db=-30.0, dull=0.5
            )
        synth = (time.process_time() - start) / repeats
        name = f"synthesis, {style}"
        print(f"{name:28s} {synth * 1000:7.1f} ms CPU per 30-s clip ({synth / encode:.2f}x write_mp3)")


def corpus(tracks_per_artist: int, workers: int | None, seconds: float) -> None:
    from melodex.demo.corpus import write_demo_corpus

    with tempfile.TemporaryDirectory() as tmp:
        cpu0, wall0 = cpu_seconds(), time.perf_counter()
        write_demo_corpus(tmp, tracks_per_artist=tracks_per_artist, seconds=seconds, workers=workers)
        wall, cpu = time.perf_counter() - wall0, cpu_seconds() - cpu0
    n = 16 * tracks_per_artist
    load = os.getloadavg()[0]
    print(
        f"corpus: {n} tracks of {seconds:g} s, workers={workers or os.cpu_count()}: "
        f"{wall:.1f} s wall, {cpu:.1f} s CPU ({cpu / n * 1000:.0f} ms CPU per track), load average {load:.1f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tracks-per-artist", type=int, default=18)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--workers", type=int, default=None)
    args = parser.parse_args()
    per_clip()
    corpus(args.tracks_per_artist, args.workers, args.seconds)


if __name__ == "__main__":
    main()
