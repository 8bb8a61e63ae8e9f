"""The 2-D map saved beside a store's parts: ``<store>/_map/coordinates.arrow`` and ``map_info.json``.

The map lives in a folder whose name starts with ``_`` and in an Arrow IPC file, not Parquet, so
that the store folder itself reads as one table of tracks: ``pd.read_parquet(store)`` and
``pyarrow.dataset`` skip ``_``-prefixed folders, and DuckDB's ``read_parquet('store/**/*.parquet')``
matches only the parts. A map saved by earlier versions (``<store>/map/coordinates.parquet``) is
still read, and is removed when a new map is saved.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from pyarrow import feather

from melodex.errors import StoreError
from melodex.util.atomic import atomic_write

MAP_DIR = "_map"
LEGACY_MAP = Path("map") / "coordinates.parquet"
INFO_KEY = b"melodex_map_info"


def save_coordinates(root: Path, coords: pd.DataFrame, info: dict) -> None:
    """Save a 2-D map (columns track_id, x, y) with ``info`` in the same file's metadata, so both are
    replaced together in one atomic rename; ``map_info.json`` beside it is a readable copy."""

    missing = {"track_id", "x", "y"} - set(coords.columns)
    if missing:
        raise StoreError(f"coordinates lack column(s) {sorted(missing)}")
    text = json.dumps(info, indent=2, sort_keys=True, default=str)
    table = pa.table({"track_id": pa.array(coords["track_id"].astype(str).tolist(), pa.string()),
                      "x": pa.array(np.asarray(coords["x"], dtype=np.float64)),
                      "y": pa.array(np.asarray(coords["y"], dtype=np.float64))})
    table = table.replace_schema_metadata({INFO_KEY: text.encode("utf-8")})
    folder = root / MAP_DIR
    with atomic_write(folder / "coordinates.arrow", "wb") as handle:
        feather.write_feather(table, handle, compression="uncompressed")
    with atomic_write(folder / "map_info.json", "w", encoding="utf-8") as handle:
        handle.write(text + "\n")
    for old in (root / LEGACY_MAP, root / LEGACY_MAP.with_name("map_info.json")):
        old.unlink(missing_ok=True)
    if (root / LEGACY_MAP.parent).is_dir() and not any((root / LEGACY_MAP.parent).iterdir()):
        (root / LEGACY_MAP.parent).rmdir()


def _map_table(root: Path) -> pa.Table | None:
    current, legacy = root / MAP_DIR / "coordinates.arrow", root / LEGACY_MAP
    try:
        if current.is_file():
            return feather.read_table(current)
        if legacy.is_file():
            return pq.read_table(legacy)
    except (OSError, pa.ArrowException) as exc:
        raise StoreError(f"{current if current.is_file() else legacy}: unreadable map ({exc})") from exc
    return None


def coordinates(root: Path) -> pd.DataFrame | None:
    """track_id, x, y of the saved map, or None when no map was saved."""

    table = _map_table(root)
    if table is None:
        return None
    frame = table.replace_schema_metadata(None).to_pandas()
    frame["track_id"] = frame["track_id"].astype(str)
    return frame


def map_info(root: Path) -> dict | None:
    """The info saved with the map, or None when no map was saved."""

    table = _map_table(root)
    if table is None:
        return None
    raw = (table.schema.metadata or {}).get(INFO_KEY)
    return json.loads(raw.decode("utf-8")) if raw else {}
