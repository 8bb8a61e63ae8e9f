"""What the audio fingerprint costs per file, against decoding the same file (measured in this run).

  python benchmarks/bench_fingerprint.py --audio DIR [--files 40] [--repeat 3]

For each of the first ``--files`` audio files under DIR: decoding its first segment (30 s, what
``melodex index`` decodes), the Chromaprint of those samples (:mod:`melodex.audio.fingerprint`,
what indexing adds), and the MFCC of the segment (what indexing already does), best of
``--repeat``. Prints the milliseconds per file and the fingerprint's cost as a share of decoding
and of decoding + MFCC. Then what ``melodex duplicates`` spends judging candidates: 2,000 tracks
whose embeddings all lie within the candidate distance (20 candidates each, the worst case), with
unrelated 30-s fingerprints, in seconds and per candidate pair.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from melodex.analysis.collection import Collection
from melodex.analysis.duplicates import NEIGHBOURS, duplicate_pairs
from melodex.audio.files import find_audio_files
from melodex.audio.fingerprint import chromaprint, missing_reason
from melodex.audio.segments import read_first_segment
from melodex.constants import SAMPLE_RATE, SEGMENT_SECONDS
from melodex.features.mfcc import FeatureConfig, compute_mfcc


def best_of(repeat: int, work) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = work()
        best = min(best, time.perf_counter() - start)
    return best, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--audio", required=True)
    parser.add_argument("--files", type=int, default=40)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    if (reason := missing_reason()) is not None:
        raise SystemExit(reason)
    files = find_audio_files([args.audio])[: args.files]
    config = FeatureConfig()
    decode, printing, mfcc, seconds = [], [], [], []
    for path in files:
        t_decode, segment = best_of(args.repeat, lambda p=path: read_first_segment(p, sr=SAMPLE_RATE,
                                                                                     window_seconds=SEGMENT_SECONDS))
        sound = segment.audio[: round((segment.end_time - segment.start_time) * SAMPLE_RATE)]
        t_print, _ = best_of(args.repeat, lambda s=sound: chromaprint(s, SAMPLE_RATE))
        t_mfcc, _ = best_of(args.repeat, lambda a=segment.audio: compute_mfcc(a, config))
        decode.append(t_decode)
        printing.append(t_print)
        mfcc.append(t_mfcc)
        seconds.append(len(sound) / SAMPLE_RATE)
    d, f, m = (1000 * float(np.mean(v)) for v in (decode, printing, mfcc))
    print(f"{len(files)} files, {np.mean(seconds):.1f} s of audio each (first segment), best of {args.repeat}")
    print(f"decode {d:.1f} ms/file, fingerprint {f:.1f} ms/file, MFCC {m:.1f} ms/file")
    print(f"fingerprint / decode = {f / d:.2f}; fingerprint / (decode + MFCC) = {f / (d + m):.3f}")
    judging()


def judging(n: int = 2000) -> None:
    rng = np.random.default_rng(0)
    embeddings = (np.ones((n, 64)) + 0.03 * rng.standard_normal((n, 64))).astype(np.float32)
    collection = Collection.from_frame(pd.DataFrame({"track_id": [str(i) for i in range(n)],
                                                     "duration": [200.0] * n}), embeddings)
    prints = [rng.integers(0, 2**32, 242, dtype=np.uint64).astype("<u4").tobytes() for _ in range(n)]
    start = time.perf_counter()
    duplicate_pairs(collection, prints)
    seconds = time.perf_counter() - start
    pairs = n * NEIGHBOURS / 2  # about: each pair is met from both sides and judged once
    print(f"duplicates on {n} tracks with {NEIGHBOURS} candidates each: {seconds:.1f} s, "
          f"~{1000 * seconds / pairs:.2f} ms per candidate pair")


if __name__ == "__main__":
    main()
