"""What the audio fingerprint costs per file, against decoding the same file (measured in this run).

  python benchmarks/bench_fingerprint.py --audio DIR [--files 40] [--repeat 3]

For each of the first ``--files`` audio files under DIR: decoding its first segment (30 s, what
``melodex index`` decodes), the Chromaprint of those samples (:mod:`melodex.audio.fingerprint`,
what indexing adds), and the MFCC of the segment (what indexing already does), best of
``--repeat``. Prints the milliseconds per file and the fingerprint's cost as a share of decoding
and of decoding + MFCC. Then what ``melodex duplicates`` spends judging candidates: 2,000 tracks
whose embeddings all lie within the candidate distance (20 candidates each, the worst case), with
unrelated 30-s fingerprints, in seconds and per candidate pair.

Then :func:`~melodex.analysis.fingerprint_match.agreement` against the baseline it replaced
(:func:`item_by_item`: each item of a copy against one item of the original, kappa over all
bits, a table popcount), in this run: the lowest score of the first ``--phase-files`` clips
cut at 0, 1/4, 1/2 and 3/4 of a fingerprint item past 2 items, as they are and through the
low-rate codecs of :data:`melodex.audio.encode.TRAINING_CODECS`; the highest score of two
different clips among the first ``--files``; and the time per pair of 30-s fingerprints.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from melodex.analysis.collection import Collection
from melodex.analysis.duplicates import NEIGHBOURS, duplicate_pairs
from melodex.analysis.fingerprint_match import ITEM_SECONDS, MATCH_AGREEMENT, agreement, kappa
from melodex.audio.decode import load_audio
from melodex.audio.encode import TRAINING_CODECS, roundtrip
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
    parser.add_argument("--phase-files", type=int, default=4)
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
    against_item_by_item(files, args.phase_files)


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


_POPCOUNT = np.array([i.bit_count() for i in range(256)], dtype=np.int32)


def item_by_item(a: np.ndarray, b: np.ndarray, *, shifts: tuple[float, float], min_items: int = 32) -> float:
    """The baseline: kappa of ``b`` against ``a`` over all bits at the whole-item shift where most
    bits agree (what ``agreement`` computed before a2fc618), the shifts searched with a table popcount."""
    a, b = np.ascontiguousarray(a, dtype="<u4"), np.ascontiguousarray(b, dtype="<u4")
    steps = np.arange(int(np.floor(shifts[0] / ITEM_SECONDS)), int(np.ceil(shifts[1] / ITEM_SECONDS)) + 1)
    reach = int(np.abs(steps).max())
    padded = np.zeros(len(a) + 2 * reach + len(b), dtype="<u4")
    padded[reach:reach + len(a)] = a
    inside = np.zeros(len(padded), dtype=bool)
    inside[reach:reach + len(a)] = True
    windows = np.lib.stride_tricks.sliding_window_view(padded, len(b))[reach + steps]
    valid = np.lib.stride_tricks.sliding_window_view(inside, len(b))[reach + steps]
    wrong = _POPCOUNT[(windows ^ b[None]).view(np.uint8)].reshape(len(steps), len(b), 4).sum(axis=2)
    n = valid.sum(axis=1)
    observed = np.where(n >= min_items, 1.0 - (wrong * valid).sum(axis=1) / (32.0 * np.maximum(n, 1)), -1.0)
    best = int(np.argmax(observed))
    shift, size = int(steps[best]), int(n[best])
    lo, hi = max(0, shift), max(0, -shift)
    return max(0.0, kappa(a[lo:lo + size], b[hi:hi + size]))  # over all bits


def against_item_by_item(files: list, phase_files: int) -> None:
    """Scores and time of ``agreement`` against :func:`item_by_item`, on the same fingerprints."""
    audio = [load_audio(path) for path in files]
    prints = [chromaprint(a, SAMPLE_RATE) for a in audio]
    item = ITEM_SECONDS * SAMPLE_RATE
    same = {"plain": [], "held": []}
    for clip, reference in zip(audio[:phase_files], prints):
        for phase in (0.0, 0.25, 0.5, 0.75):
            cut = round((2 + phase) * item)
            for codec in (None, *TRAINING_CODECS):
                copy = clip[cut:] if codec is None else roundtrip(clip[cut:], SAMPLE_RATE, codec)
                other = chromaprint(copy, SAMPLE_RATE)
                same["plain"].append(item_by_item(reference, other, shifts=(-1.0, 2.0)))
                same["held"].append(agreement(reference, other, shifts=(-1.0, 2.0))[0])
    apart = {"plain": [], "held": []}
    for i in range(len(prints)):
        for j in range(i + 1, len(prints)):
            apart["plain"].append(item_by_item(prints[i], prints[j], shifts=(-1.8, 1.8)))
            apart["held"].append(agreement(prints[i], prints[j], shifts=(-1.8, 1.8))[0])
    print(f"\nagreement (held bits, now) against item by item (before); threshold now {MATCH_AGREEMENT}")
    print(f"{'':58} {'item by item':>12} {'held bits':>10}")
    versions, clips, n_pairs = 1 + len(TRAINING_CODECS), min(phase_files, len(audio)), len(apart["plain"])
    rows = [(f"same clip cut at 4 phases x {versions} versions, {clips} clips, lowest",
             min(same["plain"]), min(same["held"])),
            (f"different clips, {n_pairs} pairs within +-1.8 s, highest",
             max(apart["plain"], default=0.0), max(apart["held"], default=0.0))]
    for label, plain, held in rows:
        print(f"{label:58} {plain:12.3f} {held:10.3f}")
    rng = np.random.default_rng(1)
    pairs = [(rng.integers(0, 2**32, 242, dtype=np.uint64).astype(np.uint32),
              rng.integers(0, 2**32, 242, dtype=np.uint64).astype(np.uint32)) for _ in range(200)]
    for low, high in ((-1.0, 1.0), (-16.0, 16.0)):
        t_plain, _ = best_of(3, lambda r=(low, high): [item_by_item(a, b, shifts=r) for a, b in pairs])
        t_held, _ = best_of(3, lambda r=(low, high): [agreement(a, b, shifts=r) for a, b in pairs])
        label = f"time per pair of 30-s fingerprints, shifts {low:+.0f}..{high:+.0f} s"
        print(f"{label:58} {1000 * t_plain / len(pairs):9.3f} ms {1000 * t_held / len(pairs):7.3f} ms"
              f"  ({t_plain / t_held:.1f}x)")


if __name__ == "__main__":
    main()
