"""Tracks that sound like a query: cosine nearest neighbours in the embedding space.

  melodex similar 000123                       # a track in the store, by track_id
  melodex similar music/song.mp3               # a stored track by path, or a new file (needs --model)
  melodex similar new.flac --model training_outputs/latest -k 20 --json

The query itself is never among its results. Search is exact up to 200,000 tracks: one
matrix-vector product over the L2-normalised embeddings (about 20 ms at 100,000 tracks). Above
that, or with --method ann, an approximate FAISS index kept in the store folder answers in
milliseconds; it is built once (seconds, with progress in the log) and rebuilt when the store
has changed.
A query file that is not in the store is embedded with --model (loaded only then); a store made
with --features mfcc-stats embeds it with its own MFCC statistics and scaling (no --model).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from melodex.commands.options import add_device, add_model, add_store, positive_int
from melodex.errors import MelodexError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("query", nargs="?", help="a track_id or path in the store, or an audio file (with --model)")
    parser.add_argument("--artist", metavar="NAME",
                        help="artists most like this artist instead of tracks: the energy distance between the "
                             "two artists' track embeddings, which compares whole catalogues (spread and "
                             "shape, not only the average) and is 0 only for the same distribution")
    add_store(parser)
    parser.add_argument("-k", "--top", dest="k", type=positive_int, default=10, help="how many neighbours (default 10)")
    add_model(parser, required=False, purpose=", to embed a query file that is not in the store")
    add_device(parser)
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--method", choices=("auto", "exact", "ann"), default="auto",
                        help="exact, ann (the FAISS index kept with the store, built when missing or stale) "
                             "or auto: exact up to 200,000 tracks, else ann (default)")


class _PredictorOnDemand:
    """Loads the model the first time a query file has to be embedded, not before, and only when
    it is the model whose embeddings the store holds (another model's vector would not compare).
    A store of MFCC statistics (``index --features mfcc-stats``) embeds a query file with its own
    scaling."""

    def __init__(self, model: str | None, device: str, store=None):
        self.model, self.device, self.store, self._predictor = model, device, store, None

    def predict_file(self, path: str | Path):
        if self.model is None and self.store is not None:
            from melodex.library.mfcc_stats import StatsEmbedder, is_stats_stamp

            if any(is_stats_stamp(stamp) for stamp in self.store.models().values()):
                return next(iter(StatsEmbedder(self.store, num_workers=0).predict([Path(path)])))
        if self.model is None:
            raise MelodexError(f"{path} is not in the store; give --model to embed it")
        if self._predictor is None:
            from melodex.inference.predictor import Predictor
            from melodex.model.checkpoint import load_checkpoint, model_fingerprint

            ckpt = load_checkpoint(self.model)
            self._check_model(path, model_fingerprint(ckpt))
            self._predictor = Predictor((ckpt.build_model(), ckpt), device=self.device, num_workers=0)
        return self._predictor.predict_file(path)

    def _check_model(self, path: str | Path, fingerprint: str) -> None:
        models = self.store.models() if self.store is not None else {}
        if models and fingerprint not in models:
            held = ", ".join(stamp.describe() for stamp in models.values())
            raise MelodexError(f"{path}: the store at {self.store.root} holds embeddings of {held}; --model "
                               f"{self.model} is model {fingerprint}, whose embedding of the file would not compare "
                               "with them: give the store's model")


def run(args: argparse.Namespace) -> int:
    from melodex.analysis.similarity import similar
    from melodex.commands.options import open_store

    if (args.artist is None) == (args.query is None):
        raise MelodexError("give a query track or --artist NAME (one of them)")
    if args.artist is not None:
        return _similar_artists(args)
    store = open_store(args.store)
    query = _padded_track_id(store, args.query)
    table = similar(store, query, args.k, predictor=_PredictorOnDemand(args.model, args.device, store),
                    method=args.method)
    if args.json:
        rows = [{key: (None if _missing(value) else value) for key, value in row.items()}
                for row in table.astype(object).to_dict(orient="records")]
        print(json.dumps({"query": args.query, "neighbours": rows}, indent=2, default=_plain))
    else:
        shown = table.astype(object).where(table.notna(), "-")
        print(shown.to_string(index=False, formatters={"distance": "{:.4f}".format, "similarity": "{:.4f}".format}))
    return 0


def _similar_artists(args: argparse.Namespace) -> int:
    from melodex.analysis.artists import MEASURE, similar_artists
    from melodex.analysis.collection import Collection
    from melodex.commands.options import open_store

    table = similar_artists(Collection.from_store(open_store(args.store)), args.artist, args.k)
    if args.json:
        print(json.dumps({"artist": args.artist, "measure": MEASURE, "neighbours": table.to_dict(orient="records")},
                         indent=2, default=_plain))
    else:
        print(f"artists like {args.artist} ({MEASURE}):")
        print(table.to_string(index=False, formatters={"distance": "{:.4f}".format,
                                                       "centroid_distance": "{:.4f}".format}))
    return 0


def _padded_track_id(store, query: str) -> str:
    """``2`` -> ``000002`` when the store's ids are zero-padded digits (FMA's) and one of them is 2;
    any other query is returned as it is."""
    if not query.isdigit() or Path(query).exists():
        return query
    keys = store.keys()
    if query in keys:
        return query
    same = [key for key in keys if key.isdigit() and int(key) == int(query)]
    return same[0] if len(same) == 1 else query


def _missing(value: Any) -> bool:
    import numpy as np
    import pandas as pd

    return value is None or (not isinstance(value, (list, np.ndarray)) and bool(pd.isna(value)))


def _plain(value: Any) -> Any:
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    return str(value)
