"""Top-10 neighbour agreement on a demo library: the demo CNN against mfcc-stats and chance.

Reads the library of a ``melodex demo`` run (``--out``; with ``--make DATA`` it first runs the
demo, by default with the settings of tests/conftest.py's ``small_demo``: 8 tracks per artist,
10 s clips, 8 epochs), indexes the same corpus with ``melodex index --features mfcc-stats`` into
a temporary store (timed against ``melodex index --model`` of the same files, also into a
temporary store), then runs ``melodex evaluate --baseline-store`` and prints, per label
(artist, release_id, genre = the demo's style):

* the share of each track's 10 nearest neighbours with the same label, for the CNN, for
  mfcc-stats and for chance (random neighbours given the label sizes);
* CNN / mfcc-stats and each / chance.

    python benchmarks/bench_retrieval.py --make /tmp/demo_data --out /tmp/demo_outputs
    python benchmarks/bench_retrieval.py --data demo_data --out demo_outputs   # an existing demo run
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from melodex.cli import main as melodex


def _timed_index(store: Path, audio: Path, metadata: Path, *how: str) -> float:
    start = time.perf_counter()
    assert melodex(["index", "--store", str(store), "--audio", str(audio), "--fma-metadata", str(metadata),
                    *how, "--quiet"]) == 0
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="a melodex demo --out folder (holding library/)")
    parser.add_argument("--data", help="its --data folder (default: DATA of --make)")
    parser.add_argument("--make", metavar="DATA", help="run melodex demo first, writing the corpus to DATA")
    parser.add_argument("--demo-args", default="--tracks-per-artist 8 --seconds 10 --epochs 8",
                        help="settings for --make (default: the test suite's small demo)")
    args = parser.parse_args()
    data = Path(args.make or args.data or "demo_data")
    if args.make:
        assert melodex(["demo", "--data", args.make, "--out", args.out, *args.demo_args.split(), "--quiet"]) == 0
    audio, metadata = data / "fma_small", data / "fma_metadata"
    out = Path(args.out)
    with tempfile.TemporaryDirectory() as tmp:
        stats_s = _timed_index(Path(tmp) / "mfcc", audio, metadata, "--features", "mfcc-stats")
        cnn_s = _timed_index(Path(tmp) / "cnn", audio, metadata, "--model", str(out / "training_outputs" / "latest"))
        report = Path(tmp) / "retrieval.json"
        assert melodex(["evaluate", "--store", str(out / "library"), "--baseline-store", str(Path(tmp) / "mfcc"),
                        "--out", str(report), "--quiet"]) == 0
        doc = json.loads(report.read_text(encoding="utf-8"))
    scores = {(row["label"], row["embedding"]): row for row in doc["scores"]}
    print(f"\n{doc['tracks']} tracks; index time: mfcc-stats {stats_s:.1f} s, CNN {cnn_s:.1f} s "
          f"(mfcc-stats takes {stats_s / cnn_s:.2f}x the CNN's time)")
    print(f"{'label':<11} {'CNN':>6} {'mfcc-stats':>10} {'chance':>7} {'CNN/mfcc':>9} {'CNN/chance':>11} "
          f"{'mfcc/chance':>12}")
    for label in ("artist", "release_id", "genre"):
        cnn, stats = scores.get((label, "store")), scores.get((label, "mfcc-stats"))
        if cnn is None or stats is None:
            continue
        print(f"{label:<11} {cnn['agreement']:>6.3f} {stats['agreement']:>10.3f} {cnn['chance']:>7.3f} "
              f"{cnn['agreement'] / stats['agreement']:>8.2f}x {cnn['lift']:>10.2f}x {stats['lift']:>11.2f}x")


if __name__ == "__main__":
    main()
