"""What changing a stored library costs, against loading it: metadata updates and re-embedding.

    python benchmarks/bench_store_updates.py                  # 20,000 tracks
    python benchmarks/bench_store_updates.py --tracks 100000

The synthetic store of ``bench_analysis.write_store`` (512-d embeddings, 8 labels, parts of
5,000 tracks). The baseline is loading it (``tracks()`` + ``embeddings()`` in a fresh reader).
Then:

* ``update metadata``: ``update_metadata`` with a manifest that changes every track's artist
  (no audio is decoded; every part is read and rewritten);
* ``update metadata, no change``: the same again, when nothing differs (every part read only);
* ``re-embed, store side``: ``reembed`` with a stand-in predictor that returns precomputed
  vectors at once, so what is timed is the store's work (finding stale rows, staging each batch,
  the one-part swap), not the model's; a real run adds the model's time per file.

Wall times depend on what else the machine runs (the load average is printed); the ratios to the
load (the median of 3) are what to compare.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.bench_analysis import DIM, write_store


class _InstantPredictor:
    """Answers ``predict`` with fixed vectors and probabilities: no decoding, no model."""

    def __init__(self, labels: tuple[str, ...]):
        import numpy as np

        self.labels = labels
        self.embedding = np.full(DIM, 0.5, dtype=np.float32)
        self.probabilities = np.full(len(labels), 1 / len(labels), dtype=np.float32)

    def predict(self, paths, **_):
        for path in paths:
            yield SimpleNamespace(audio_file=str(path), error=None, embedding=self.embedding, labels=self.labels,
                                  probabilities=self.probabilities, duration=30.0)


def _timed(fn) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def main(argv: list[str] | None = None) -> int:
    from melodex.library.indexing import MetadataSources
    from melodex.library.schema import ModelStamp
    from melodex.library.store import LibraryStore
    from melodex.library.updates import reembed, update_metadata

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tracks", type=int, default=20_000)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        root = write_store(Path(tmp) / "store", args.tracks)
        load = sorted(_timed(lambda: (LibraryStore(root).tracks(), LibraryStore(root).embeddings()))[0]
                      for _ in range(3))[1]  # the median of 3
        paths = LibraryStore(root).tracks()["path"].tolist()
        manifest = {p: {"artist": f"New artist {i % 100}"} for i, p in enumerate(paths)}
        sources = MetadataSources(manifest=manifest, read_file_tags=False)
        update, changed = _timed(lambda: update_metadata(LibraryStore(root), sources, paths))
        again, unchanged = _timed(lambda: update_metadata(LibraryStore(root), sources, paths))
        model = ModelStamp("0123456789abcdef", "bench", ("A", "B", "C"))
        swap, summary = _timed(lambda: reembed(LibraryStore(root), _InstantPredictor(model.labels), model,
                                               part_size=1000))
        assert changed == args.tracks and unchanged == 0 and summary.swapped
        assert set(LibraryStore(root).tracks()["model_fingerprint"]) == {model.fingerprint}
    rows = [("load (baseline)", load, ""), ("update metadata", update, f"{changed} rows changed"),
            ("update metadata, no change", again, "0 rows changed"),
            ("re-embed, store side", swap, f"{summary.stale} tracks, batches of 1000")]
    print(f"{args.tracks} tracks x {DIM}-d; load average {os.getloadavg()[0]:.1f}")
    print(f"{'step':<28} {'seconds':>8} {'x load':>7}  note")
    for name, seconds, note in rows:
        print(f"{name:<28} {seconds:8.2f} {seconds / load:7.1f}  {note}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
