"""How far a lossy re-encode moves the MFCC itself, for mel bands up to Nyquist and lower, and two floors.

    python benchmarks/bench_codec_features.py --clips DIR    # 60 clips; fmax 11025 (before), 10000 (default), 9000; top_db 80 (before), 60 (default)
    python benchmarks/bench_codec_features.py --clips DIR --fmax 11025 10500 --top-db 80 --limit 200

No model is involved: this measures the feature a model sees. Each clip's first 30 s is decoded
to mono at 44.1 kHz, passed through each codec of :data:`melodex.audio.encode.CODECS` named by
``--codecs`` (in memory; a codec with its own rate, such as the 22.05 kHz mp3, resamples first)
and decoded back; both are then resampled to 22.05 kHz with soxr, as Melodex's decoder does.
For every pair of ``fmax`` and ``top_db`` the table gives, as median, 95th percentile and maximum over the clips:

* ``frames``: the relative change of the whole MFCC, ``||M(codec) - M(clean)|| / ||M(clean)||``
  (a codec whose delay is not cut to the sample also shows here, as a shift of every frame);
* ``stats``: the same for the mean and standard deviation of each coefficient over time
  (:func:`~melodex.features.stats.mfcc_stats`, what ``mfcc-stats`` standardises and stores; a
  shift of the frames hardly moves it).

Why: encoders for low-rate files cut everything above 10-11 kHz, and with mel bands up to
11.025 kHz the top bands of such a file fall 60-70 dB, which the DCT spreads over all 20 MFCCs
(``bench_robustness.py`` on real music: every version under cosine 0.95 was a 22.05 kHz mono mp3
at 48 kbit/s). Low-quality Vorbis keeps the band but drops quiet detail under its masking
threshold, which an 80 dB floor still sees. This benchmark is the evidence on which the defaults
(:data:`melodex.constants.FMAX`, :data:`~melodex.constants.TOP_DB`) moved from 11,025 Hz and 80 dB
to 10,000 Hz and 60 dB; the earlier values stay in the default table for comparison.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import soxr

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from melodex.audio.decode import load_audio
from melodex.audio.encode import CODECS, roundtrip
from melodex.audio.files import find_audio_files
from melodex.errors import AudioLoadError
from melodex.features.mfcc import DEFAULT_FEATURES, compute_mfcc
from melodex.features.stats import mfcc_stats

DEFAULT_CODECS = ("mp3-48k-22k-mono", "ogg-default-22k-mono", "mp3-128k", "aac-64k")
EARLIER_FMAX = 11025.0  # Hz: the default before 10000 (the Nyquist frequency of 22.05 kHz)
EARLIER_TOP_DB = 80.0  # dB: the default before 60
SOURCE_RATE = 44100  # Hz: the rate the versions are encoded from, as a CD-rate library's files were


def _to_feature_rate(audio: np.ndarray) -> np.ndarray:
    return soxr.resample(audio, SOURCE_RATE, DEFAULT_FEATURES.sample_rate, quality="HQ").astype(np.float32)


def _relative(clean: np.ndarray, coded: np.ndarray) -> float:
    return float(np.linalg.norm(coded - clean) / np.linalg.norm(clean))


Setting = tuple[float, float]  # (fmax Hz, top_db dB)


def relative_changes(clips: list[Path], codecs: list[str],
                     settings: list[Setting]) -> dict[tuple[str, Setting], list[tuple[float, float]]]:
    """``{(codec, (fmax, top_db)): [(frames change, stats change) per clip]}``; clips that cannot be
    decoded are skipped (and said)."""
    configs = {s: replace(DEFAULT_FEATURES, fmax=s[0], top_db=s[1]) for s in settings}
    changes: dict[tuple[str, Setting], list[tuple[float, float]]] = {(c, s): [] for c in codecs for s in settings}
    for path in clips:
        try:
            audio = load_audio(path, duration=DEFAULT_FEATURES.segment_seconds, sr=SOURCE_RATE)
        except AudioLoadError as exc:
            print(f"skipped: {exc}", file=sys.stderr)
            continue
        clean_audio = _to_feature_rate(audio)
        clean = {s: compute_mfcc(clean_audio, config) for s, config in configs.items()}  # once per clip
        for codec in codecs:
            coded_audio = _to_feature_rate(roundtrip(audio, SOURCE_RATE, codec))
            for s, config in configs.items():
                coded = compute_mfcc(coded_audio, config)
                changes[codec, s].append((_relative(clean[s], coded), _relative(mfcc_stats(clean[s]), mfcc_stats(coded))))
    return changes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", required=True, help="folder of audio clips (any of the five formats)")
    parser.add_argument("--limit", type=int, default=60, help="at most this many clips (default 60)")
    parser.add_argument("--fmax", type=float, nargs="+", default=[EARLIER_FMAX, DEFAULT_FEATURES.fmax, 9000.0],
                        help=f"upper mel band edges to compare, Hz (default: {EARLIER_FMAX:g}, Melodex's "
                             f"earlier default, {DEFAULT_FEATURES.fmax:g}, today's, and 9000)")
    parser.add_argument("--top-db", type=float, nargs="+", default=[EARLIER_TOP_DB, DEFAULT_FEATURES.top_db],
                        help=f"dynamic ranges to compare, dB below each segment's maximum (default: "
                             f"{EARLIER_TOP_DB:g}, the earlier default, and {DEFAULT_FEATURES.top_db:g}, today's)")
    parser.add_argument("--codecs", nargs="+", default=list(DEFAULT_CODECS), choices=sorted(CODECS),
                        help=f"versions to compare with the clean clip (default: {' '.join(DEFAULT_CODECS)})")
    args = parser.parse_args()
    clips = find_audio_files([args.clips])[: args.limit]
    if not clips:
        raise SystemExit(f"{args.clips}: no audio files found")
    settings = list(dict.fromkeys((fmax, top) for fmax in args.fmax for top in args.top_db))
    started = time.perf_counter()
    changes = relative_changes(clips, args.codecs, settings)
    n = len(next(iter(changes.values())))
    print(f"relative MFCC change of a re-encoded clip, {n} clips of {args.clips} "
          f"(first {DEFAULT_FEATURES.segment_seconds:g} s, encoded from {SOURCE_RATE} Hz mono)\n")
    print(f"{'codec':22s} {'fmax Hz':>8s} {'top_db':>6s}   frames: median    p95    max   stats: median    p95    max")
    for codec in args.codecs:
        for fmax, top in settings:
            values = np.asarray(changes[codec, (fmax, top)])
            cells = [f"{np.median(v):6.3f} {np.percentile(v, 95):6.3f} {v.max():6.3f}" for v in values.T]
            print(f"{codec:22s} {fmax:8.0f} {top:6.0f}   {cells[0]:>29s}   {cells[1]:>28s}")
    print(f"\n{time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
