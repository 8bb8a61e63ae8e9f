"""The serve JSON API under a bounded loopback load: latency per request, correctness checked.

Builds a synthetic store (clustered 512-d embeddings, like the map tests' library; no audio is
read by the API), serves it on 127.0.0.1 with a free port, and sends N requests (default 200)
from C concurrent clients (default 8), a third each of ``/api/similar/<id>``, ``/api/path`` and
``/api/playlist``. Every answer is compared with the same request answered serially first; a
wrong or failed answer stops the run. Prints p50/p95/max latency per endpoint and overall, and
the ratio of the loaded p95 to the serial p95 (how much queueing 8 clients add).

    python benchmarks/bench_serve.py                       # 2,000 tracks, 200 requests, 8 at once
    python benchmarks/bench_serve.py --tracks 20000 --requests 400 --concurrency 16
"""

from __future__ import annotations

import argparse
import http.client
import json
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from melodex.analysis.serve import make_server
from melodex.library.store import LibraryStore, TrackRecord


def make_store(root: Path, n_tracks: int, n_styles: int = 8, seed: int = 0) -> LibraryStore:
    """``n_tracks`` tracks around ``n_styles`` centres, 40 artists, durations 2-6 minutes, a circle map."""
    rng = np.random.default_rng(seed)
    centres = np.abs(rng.standard_normal((n_styles, 512)))
    style = rng.integers(0, n_styles, n_tracks)
    emb = np.maximum(centres[style] + 0.5 * rng.standard_normal((n_tracks, 512)), 0).astype(np.float32)
    records = [TrackRecord(f"t{i:06d}", f"/music/{i}.mp3", emb[i], {f"S{s}": float(s == style[i]) for s in range(n_styles)},
                           title=f"Song {i}", artist=f"Artist {i % 40}", genre=f"S{style[i]}", source="manifest",
                           duration=float(rng.uniform(120, 360))) for i in range(n_tracks)]
    store = LibraryStore(root)
    store.add(records)
    angle = np.linspace(0, 2 * np.pi, n_tracks, endpoint=False)
    store.save_coordinates(pd.DataFrame({"track_id": [r.track_id for r in records], "x": np.cos(angle),
                                         "y": np.sin(angle)}), {"method": "benchmark circle"})
    return store


def timed_get(address, path: str) -> tuple[float, int, bytes]:
    conn = http.client.HTTPConnection(*address, timeout=30)
    start = time.perf_counter()
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        body = response.read()
        return time.perf_counter() - start, response.status, body
    finally:
        conn.close()


def requests_for(ids: list[str], n: int) -> list[str]:
    paths = []
    for i in range(n):
        a, b = ids[(7 * i) % len(ids)], ids[(7 * i + 101) % len(ids)]
        paths.append((f"/api/similar/{a}?k=10", f"/api/path?from={a}&to={b}&length=10",
                      f"/api/playlist?seed={a}&length=20")[i % 3])
    return paths


def summary(name: str, seconds: list[float]) -> str:
    ms = np.asarray(seconds) * 1000
    return (f"{name:<10} n={len(ms):4d}  p50 {np.percentile(ms, 50):7.1f} ms  p95 {np.percentile(ms, 95):7.1f} ms"
            f"  max {ms.max():7.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tracks", type=int, default=2000)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = make_store(Path(tmp) / "library", args.tracks)
        server = make_server(store, port=0)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        address = server.server_address[:2]
        try:
            paths = requests_for(store.tracks()["track_id"].tolist(), args.requests)
            serial = {}
            serial_times = []
            for p in dict.fromkeys(paths):
                elapsed, status, body = timed_get(address, p)
                assert status == 200, (p, status, body[:200])
                serial[p] = json.loads(body)
                serial_times.append(elapsed)
            with ThreadPoolExecutor(max_workers=args.concurrency) as pool:
                results = list(pool.map(lambda p: timed_get(address, p), paths))
        finally:
            server.shutdown()
            server.server_close()
    wrong = [p for p, (_, status, body) in zip(paths, results) if status != 200 or json.loads(body) != serial[p]]
    if wrong:
        raise SystemExit(f"{len(wrong)} wrong answers, e.g. {wrong[0]}")
    print(f"{args.tracks} tracks, {args.requests} requests, {args.concurrency} at once on {address[0]}: "
          f"all {len(results)} answers 200 and equal to the serial answers")
    for kind in ("similar", "path", "playlist"):
        print(summary(kind, [t for p, (t, _, _) in zip(paths, results) if p.startswith(f"/api/{kind}")]))
    loaded = [t for t, _, _ in results]
    print(summary("all", loaded))
    print(summary("serial", serial_times))
    print(f"loaded p95 / serial p95: {np.percentile(loaded, 95) / np.percentile(serial_times, 95):.2f}")


if __name__ == "__main__":
    main()
