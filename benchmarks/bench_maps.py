"""How long ``melodex map`` takes (UMAP fit + HTML page + PNG) on synthetic libraries.

    python benchmarks/bench_maps.py                 # 8,000 and 100,000 points
    python benchmarks/bench_maps.py --sizes 8000    # just one size

For each size a fresh Python process builds a synthetic store (clustered 512-d embeddings, as a
trained model gives) and maps it twice:

* "cold": the first map in a fresh process whose numba cache directory (``NUMBA_CACHE_DIR``) is
  empty, so every numba function of umap-learn and pynndescent is compiled. pynndescent caches
  its compilations on disk (``cache=True``), and :mod:`melodex.analysis.umap_kernels` turns the
  same cache on for umap-learn's kernels, so a second fresh process is measured too: "cold, disk
  cache" (fresh process, cache filled by the cold run: what every later ``melodex map`` gets);
* "warm": a second ``--refit`` in the same process (everything compiled).

The seeded fit runs single-threaded (umap-learn ignores ``n_jobs`` when ``random_state`` is set);
``--fast`` (no seed, all cores) is measured warm as the baseline ratio (up to 20,000 points).
Wall and CPU seconds are both printed: on a loaded machine the CPU seconds of the seeded
(single-threaded) run are what its wall time would be on an idle core. ``bench_map(n)`` returns
the numbers for one size in this process (first call = cold only if nothing was compiled yet).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def synthetic_store(root: Path, n_points: int, *, n_styles: int = 16, seed: int = 0):
    """A store of ``n_points`` tracks: each style a noisy 4-D sheet in 512-d, ReLU'd like the CNN's."""
    import numpy as np

    from melodex.library.store import LibraryStore, TrackRecord

    rng = np.random.default_rng(seed)
    styles = np.arange(n_points) % n_styles
    centres = rng.standard_normal((n_styles, 512)) * 2.0
    bases = rng.standard_normal((n_styles, 4, 512))
    latent = rng.uniform(-1, 1, size=(n_points, 4))
    sheets = np.einsum("nk,nkd->nd", latent, bases[styles])
    emb = centres[styles] + sheets + 0.3 * rng.standard_normal((n_points, 512))
    emb = np.maximum(emb, 0).astype(np.float32)
    names = [f"Style {s}" for s in range(n_styles)]

    def records():
        for i in range(n_points):
            s = int(styles[i])
            yield TrackRecord(track_id=f"b{i:06d}", path=f"/music/{s}/{i:06d}.mp3", embedding=emb[i],
                              probabilities={names[s]: 0.9}, title=f"Track {i}", artist=f"Artist {i % 2000}",
                              date=None if i % 9 == 0 else f"{1960 + i % 60}-0{1 + i % 9}-01",
                              genre=None if i % 13 == 0 else names[s], source="tags", duration=30.0)

    store = LibraryStore(root)
    store.add(records(), batch_size=10_000)
    return store


def time_map(store, out_dir: Path, *, fast: bool = False) -> dict:
    """One ``melodex map --refit``: wall seconds per phase, CPU seconds, the HTML size in bytes.

    CPU time (all threads of this process) is reported beside wall time because the shared
    development machine is often loaded: for the seeded, single-threaded fit it is what the wall
    time would be on an idle core.
    """
    from melodex.analysis.map_figure import write_static_map
    from melodex.analysis.map_page import write_html_map
    from melodex.analysis.mapping import update_map

    c0, t0 = time.process_time(), time.perf_counter()
    update_map(store, refit=True, fast=fast)
    c1, t1 = time.process_time(), time.perf_counter()
    html = write_html_map(store, out_dir / "map.html")
    t2 = time.perf_counter()
    write_static_map(store, out_dir / "map.png")
    c3, t3 = time.process_time(), time.perf_counter()
    return {"fit_s": t1 - t0, "html_s": t2 - t1, "png_s": t3 - t2, "total_s": t3 - t0,
            "fit_cpu_s": c1 - c0, "total_cpu_s": c3 - c0, "html_bytes": html.stat().st_size}


def bench_map(n_points: int, *, fast_baseline: bool = True) -> dict:
    """Map a synthetic store of ``n_points`` twice in this process (first, then warm)."""
    with tempfile.TemporaryDirectory(prefix="melodex-bench-map-") as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        store = synthetic_store(tmp / "library", n_points)
        build_s = time.perf_counter() - t0
        first = time_map(store, tmp)
        warm = time_map(store, tmp)
        result = {"n_points": n_points, "store_build_s": build_s, "first": first, "warm": warm}
        if fast_baseline:
            result["warm_fast"] = time_map(store, tmp, fast=True)
    return result


def _in_fresh_process(n_points: int, cache_dir: str, fast_baseline: bool) -> dict:
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir, PYTHONPATH=str(ROOT))
    code = (f"import json, sys; sys.path.insert(0, {str(ROOT)!r}); "
            "from benchmarks.bench_maps import bench_map; "
            f"print(json.dumps(bench_map({n_points}, fast_baseline={fast_baseline})))")
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[8000, 100_000])
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    rows = []
    for n in args.sizes:
        with tempfile.TemporaryDirectory(prefix="melodex-numba-cache-") as cache:
            cold = _in_fresh_process(n, cache, fast_baseline=n <= 20_000)
            cached = _in_fresh_process(n, cache, fast_baseline=False) if n <= 20_000 else None
        rows.append({"cold": cold, "cold_disk_cache": cached})
        warm, fast = cold["warm"], cold.get("warm_fast")
        print(f"\n{n:,} points (store built in {cold['store_build_s']:.1f} s)")
        print(f"  {'run':<28}{'fit':>9}{'html':>8}{'png':>8}{'total':>9}{'CPU':>9}")
        runs = [("cold (empty numba cache)", cold["first"])]
        if cached:
            runs.append(("cold (numba disk cache)", cached["first"]))
        runs.append(("warm (seeded, 1 thread)", warm))
        if fast:
            runs.append(("warm --fast (all cores)", fast))
        for name, r in runs:
            cells = (f"{r['fit_s']:>8.1f}s{r['html_s']:>7.1f}s{r['png_s']:>7.1f}s{r['total_s']:>8.1f}s"
                     f"{r['total_cpu_s']:>8.1f}s")
            print(f"  {name:<28}{cells}")
        if fast:
            print(f"  seeded / fast total: {warm['total_s'] / fast['total_s']:.2f}x")
        print(f"  load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; "
              f"HTML {warm['html_bytes'] / 1e6:.1f} MB "
              f"({warm['html_bytes'] / n:.0f} B/point incl. plotly.js)")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
