"""Quality of the listening tools on a demo library: path steps, mix flow, cluster ARI, duplicates.

Reads the library of a ``melodex demo`` run (``--out``; with ``--make`` it first runs the demo
with the settings of tests/test_listening.py: 8 tracks per artist, 10 s, 8 epochs) and prints:

* path: the mean step of ``playlist --from A --to B --length 10`` over 20 random pairs, divided by
  the mean cosine distance of random pairs (small = the path moves in small steps);
* mix: the mean step of a 20-track instant mix, over the same ratio, and against the mean step of
  the same tracks ordered by distance to the seed only (below 1 = the order flows);
* clusters: the adjusted Rand index of KMeans(5) and of HDBSCAN (auto) against the demo styles;
* duplicates: how many groups ``melodex duplicates`` finds in the demo library itself (all its
  clips last 10 s, so only the embedding can tell them apart), and the distribution of each
  track's nearest-neighbour distance against the default ``--max-distance``.

    python benchmarks/bench_listening.py --out demo_outputs
    python benchmarks/bench_listening.py --make /tmp/demo --out /tmp/demo/outputs
"""

from __future__ import annotations

import argparse
import sys
from itertools import pairwise
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sklearn.metrics import adjusted_rand_score

from melodex.analysis.collection import Collection
from melodex.analysis.duplicates import find_duplicates
from melodex.analysis.neighbours import all_nearest
from melodex.analysis.playlists import cluster_labels, instant_mix, path_between
from melodex.cli import main as melodex
from melodex.constants import DUPLICATE_CANDIDATE_DISTANCE
from melodex.library.store import LibraryStore


def random_pair_distance(c: Collection, rng: np.random.Generator, n: int = 4000) -> float:
    i, j = rng.integers(0, len(c), (2, n))
    keep = i != j
    return float(np.mean(1.0 - np.sum(c.unit[i[keep]] * c.unit[j[keep]], axis=1)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="a melodex demo --out folder (holding library/)")
    parser.add_argument("--make", metavar="DATA", help="run melodex demo first, writing the corpus to DATA")
    args = parser.parse_args()
    if args.make:
        assert melodex(["demo", "--data", args.make, "--out", args.out, "--tracks-per-artist", "8",
                        "--seconds", "10", "--epochs", "8", "--quiet"]) == 0
    store = LibraryStore(Path(args.out) / "library")
    c = Collection.from_store(store)
    genres = store.tracks()["genre"].astype(str).to_numpy()
    rng = np.random.default_rng(0)
    base = random_pair_distance(c, rng)
    print(f"{len(c)} tracks; mean cosine distance of random pairs {base:.4f}")

    ratios = []
    for _ in range(20):
        a, b = rng.choice(len(c), 2, replace=False)
        ratios.append(np.mean(path_between(c, c.track_ids[a], c.track_ids[b], 10).steps[1:]) / base)
    print(f"path (length 10, 20 random pairs): mean step / random pair = {np.mean(ratios):.3f} "
          f"(min {np.min(ratios):.3f}, max {np.max(ratios):.3f})")

    flow, by_seed = [], []
    for seed in rng.choice(len(c), 10, replace=False):
        mix = instant_mix(c, [c.track_ids[seed]], 20)
        flow.append(np.mean(mix.steps[1:]))
        rows = sorted(mix.rows, key=lambda r: c.distance(seed, r))
        by_seed.append(np.mean([c.distance(x, y) for x, y in pairwise(rows)]))
    print(f"instant mix (20 tracks, 10 seeds): mean step / random pair = {np.mean(flow) / base:.3f}; "
          f"flow order / seed-distance order = {np.mean(flow) / np.mean(by_seed):.3f}")

    for k, name in ((5, "KMeans(5)"), (None, "HDBSCAN (auto)")):
        labels = cluster_labels(c, k)
        print(f"clusters {name}: {len(set(labels.tolist()))} clusters, adjusted Rand index "
              f"{adjusted_rand_score(genres, labels):.3f} against the demo styles")

    prints = store.chromaprints()
    missing = sum(f is None for f in prints)
    _, nearest = all_nearest(c.unit, 1)
    if missing:
        print(f"duplicates: {missing} of {len(prints)} tracks have no fingerprint "
              f"(melodex duplicates --store {store.root} --fingerprint adds them)")
    else:
        table = find_duplicates(c, prints)
        print(f"duplicates in the demo library itself: {table['group'].nunique() if len(table) else 0} groups, "
              f"{len(table)} tracks (candidates within {DUPLICATE_CANDIDATE_DISTANCE}, confirmed by fingerprints; "
              "the demo has no copies, but renders a few clips almost identically)")
        for row in table.itertuples(index=False):
            print(f"  group {row.group}: {row.track_id} distance {row.distance:.4f} agreement {row.agreement:.3f}")
    q = np.percentile(nearest[:, 0], [1, 5, 25, 50])
    print("nearest-neighbour cosine distance, percentiles 1/5/25/50: " + ", ".join(f"{v:.5f}" for v in q))


if __name__ == "__main__":
    main()
