"""TODO docstring."""

from __future__ import annotations

import argparse
import json
from typing import Any

from melodex.analysis.similarity import similar
from melodex.errors import MelodexError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from melodex.library.store import DEFAULT_STORE

    parser.add_argument("query", help="a track_id or path in the store, or an audio file (with --model)")
    parser.add_argument("--store", default=DEFAULT_STORE, metavar="DIR", help=f"library store (default {DEFAULT_STORE})")
    parser.add_argument("-k", "--top", dest="k", type=int, default=10, help="how many neighbours (default 10)")
    parser.add_argument("--model", help="checkpoint to embed a query file that is not in the store")
    parser.add_argument("--device", default="auto", help="auto (default), cpu or cuda")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--method", choices=("auto", "exact", "ann"), default="auto",
                        help="exact search (auto, exact) or an approximate pynndescent graph (ann), "
                             "which only pays off for stores of millions of tracks")


def run(args: argparse.Namespace) -> int:
    from melodex.library.store import LibraryStore

    if args.k < 1:
        raise MelodexError("-k must be at least 1")
    table = similar(LibraryStore(args.store), args.query, args.k, model=args.model, device=args.device,
                    method=args.method)
    if args.json:
        rows = [{key: (None if _missing(value) else value) for key, value in row.items()}
                for row in table.astype(object).to_dict(orient="records")]
        print(json.dumps({"query": args.query, "neighbours": rows}, indent=2, default=_plain))
    else:
        shown = table.astype(object).where(table.notna(), "-")
        print(shown.to_string(index=False, formatters={"distance": "{:.4f}".format, "similarity": "{:.4f}".format}))
    return 0


def _missing(value: Any) -> bool:
    import numpy as np
    import pandas as pd

    return value is None or (not isinstance(value, (list, np.ndarray)) and bool(pd.isna(value)))


def _plain(value: Any) -> Any:
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    return str(value)
