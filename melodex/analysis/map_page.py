"""The interactive HTML map page of a library: its data, colours and one self-contained file.

Its functions take "a store or frames": a :class:`~melodex.library.store.LibraryStore` with a map, a
``(tracks, coordinates)`` pair of DataFrames, or one DataFrame with the track columns plus
``x`` and ``y``. Only tracks with coordinates are drawn. Missing metadata is shown as
"unknown", never guessed.
"""

from __future__ import annotations

import html
import json
import logging
import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np
import pandas as pd
from plotly.offline import get_plotlyjs

from melodex.analysis.artists import artist_distance_matrix
from melodex.analysis.collection import Collection, track_artist_labels
from melodex.analysis.map_template import APP_JS, PAGE_TEMPLATE
from melodex.analysis.neighbours import all_nearest
from melodex.analysis.palette import OTHER_COLOR, PALETTE, UNKNOWN_COLOR, label_colors, model_labels
from melodex.analysis.playlists import HDBSCAN_BRUTE_MAX, cluster_labels, cluster_name
from melodex.constants import DUPLICATE_DISTANCE, DURATION_TOLERANCE
from melodex.errors import MapError
from melodex.util.atomic import atomic_write

log = logging.getLogger(__name__)

COLOR_COLUMNS = {"genre": "genre", "predicted": "predicted_label", "artist": "artist", "year": "year",
                 "folder": "folder"}
AUTO_COLORS = ("genre", "predicted", "artist", "folder")  # the default colouring: the first any track has
STATIC_FORMATS = {".png": "png", ".svg": "svg", ".pdf": "pdf"}
MAX_LEGEND = 12  # categories named in a static legend; the rest are drawn as "other"
MAX_ARTIST_COLORS = len(PALETTE) - 1  # the most frequent artists get a colour; the rest are "other artists"
PAGE_NEIGHBOURS = 10  # similar tracks listed when a point is clicked
PAGE_NEIGHBOURS_MAX_TRACKS = 50_000  # above this the page lists none (``melodex serve`` answers instead)
PAGE_ARTISTS = 5  # similar artists listed for a searched artist
PAGE_ARTISTS_MAX_TRACKS = 10_000  # above this the page lists none (the pairwise cost grows with n^2)
# Up to here the page's clusters are 'playlist --clusters auto' (HDBSCAN on the distance matrix, as
# quick as playlists.HDBSCAN_BRUTE_MAX says); above, 'playlist --clusters 12' (KMeans)
PAGE_CLUSTERS_AUTO_MAX_TRACKS = HDBSCAN_BRUTE_MAX
PAGE_CLUSTERS_K = 12
PAGE_CLUSTERS_MAX_TRACKS = 20_000  # above this the page has no clusters ('playlist --clusters' still has)


def map_frame(store_or_frames: Any) -> pd.DataFrame:
    """The tracks that have map coordinates, with their metadata and ``x``, ``y`` columns."""

    if hasattr(store_or_frames, "tracks") and hasattr(store_or_frames, "coordinates"):
        tracks, coords = store_or_frames.tracks(), store_or_frames.coordinates()
        if coords is None:
            raise MapError("the store has no map yet: run 'melodex map' first")
    elif isinstance(store_or_frames, tuple):
        tracks, coords = store_or_frames
    elif isinstance(store_or_frames, pd.DataFrame):
        tracks, coords = store_or_frames.drop(columns=["x", "y"]), store_or_frames[["track_id", "x", "y"]]
    else:
        raise TypeError("expected a LibraryStore, a (tracks, coordinates) pair or a DataFrame with x and y")
    coords = coords[["track_id", "x", "y"]].assign(track_id=coords["track_id"].astype(str))
    coords = coords.dropna(subset=["x", "y"]).drop_duplicates("track_id", keep="last")
    frame = tracks.assign(track_id=tracks["track_id"].astype(str)).merge(coords, on="track_id", how="inner")
    frame = frame.reset_index(drop=True)
    return frame.assign(folder=track_folders(frame))


def track_folders(frame: pd.DataFrame) -> list[str | None]:
    """Each track's folder: its file's parent folder, written relative to the folder that holds
    every track's folder (so two "CD1" folders stay apart); that shared folder itself is named by
    its last part. None where the path is unknown."""
    parents = [None if p is None else os.path.dirname(p.rstrip("/\\"))
               for p in label_strings(frame.get("path"), len(frame))]
    known = sorted({p for p in parents if p})
    try:
        root = os.path.commonpath(known) if known else ""
    except ValueError:  # relative and absolute paths, or two drives: no folder holds them all
        root = ""
    names = {p: os.path.relpath(p, root) if root else p for p in known}
    top = os.path.basename(root.rstrip("/\\")) or root
    return [None if not p else names[p] if names[p] != os.curdir else top for p in parents]


def has_predictions(frame: pd.DataFrame) -> bool:
    """True when some track has a predicted genre (False for a headless model's or an mfcc-stats store)."""
    return any(v is not None for v in label_strings(frame.get("predicted_label"), len(frame)))


def choose_color_by(frame: pd.DataFrame, color_by: str | None = None) -> str:
    """The colouring to draw: ``color_by``, or for None the first of :data:`AUTO_COLORS` that some
    track has a value for (tag genre, predicted genre, artist, folder). ``"predicted"`` on tracks
    without predicted genres (a model without a genre head) logs a warning and falls back the same way."""
    if color_by is not None and color_by not in COLOR_COLUMNS:
        raise ValueError(f"color_by must be one of {sorted(COLOR_COLUMNS)}, got {color_by!r}")
    if color_by == "predicted" and not has_predictions(frame):
        instead = choose_color_by(frame)
        log.warning("no predicted genres to colour by (the store's model has no genre head); colouring by %s", instead)
        return instead
    if color_by is not None:
        return color_by
    n = len(frame)
    return next((mode for mode in AUTO_COLORS if any(label_strings(frame.get(COLOR_COLUMNS[mode]), n))), "folder")


def label_strings(series: pd.Series | None, n: int) -> list[str | None]:
    """Column values as str, None where missing (no column at all counts as all missing)."""

    if series is None:
        return [None] * n
    return [None if (v is None or v is pd.NA or (isinstance(v, float) and v != v) or str(v) == "") else str(v)
            for v in series.tolist()]


def color_values(frame: pd.DataFrame, color_by: str) -> list[str | None]:
    """Each point's category for colouring by ``color_by`` (a key of :data:`COLOR_COLUMNS`, not
    ``"year"``). Artists are told apart as :func:`~melodex.analysis.collection.artist_labels`
    does (namesakes with different artist_ids are two artists, ``"name [artist_id]"``)."""

    if color_by == "artist":
        return list(track_artist_labels(frame))
    return label_strings(frame.get(COLOR_COLUMNS[color_by]), len(frame))


def _codes(values: list[str | None]) -> tuple[list[int], list[str]]:
    """Category codes (-1 for missing) and the sorted category names."""
    names = sorted({v for v in values if v is not None}, key=str.casefold)
    index = {name: k for k, name in enumerate(names)}
    return [index[v] if v is not None else -1 for v in values], names


def track_years(frame: pd.DataFrame) -> list[int | None]:
    if "year" in frame:
        years = pd.to_numeric(frame["year"], errors="coerce")
    elif "date" in frame:  # the year a date string starts with: read, not invented
        years = pd.to_numeric(frame["date"].astype("string").str.slice(0, 4), errors="coerce")
    else:
        return [None] * len(frame)
    return [None if pd.isna(v) else int(v) for v in years.tolist()]


def _audio_urls(paths: list[str | None], page_dir: Path) -> list[str | None]:
    """URLs of the audio files relative to the page's folder (so file:// and any web server work).

    The relative path is worked out once per folder, not once per file.
    """
    folders: dict[str, str] = {}
    start = os.path.abspath(page_dir)
    urls: list[str | None] = []
    for p in paths:
        if p is None:
            urls.append(None)
            continue
        folder, name = os.path.split(os.path.abspath(p))
        prefix = folders.get(folder)
        if prefix is None:
            try:
                rel = os.path.relpath(folder, start)
                prefix = "" if rel == os.curdir else quote(rel.replace(os.sep, "/"), safe="/") + "/"
            except ValueError:  # another drive on Windows: no relative path exists
                prefix = Path(folder).as_uri() + "/"
            folders[folder] = prefix
        urls.append(prefix + quote(name, safe=""))
    return urls


def category_colors(frame: pd.DataFrame) -> dict[str, dict[str, str]]:
    """Colour of each genre / predicted genre, and of each coloured artist, as the page and figure use.

    Genres and predicted genres share one mapping (:func:`~melodex.analysis.palette.label_colors`
    with the model's labels first), so a label is the same colour in both modes and in the
    evolution figures. Artists: the :data:`MAX_ARTIST_COLORS` with most tracks get colours.
    """

    n = len(frame)
    genres = {v for v in label_strings(frame.get("genre"), n) if v is not None}
    preds = {v for v in label_strings(frame.get("predicted_label"), n) if v is not None}
    labels = label_colors(model_labels(frame.columns), genres | preds)
    return {"label": labels, "artist": _top_colors(color_values(frame, "artist")),
            "folder": _top_colors(label_strings(frame.get("folder"), n))}


def _top_colors(values: list[str | None]) -> dict[str, str]:
    """Colours for the :data:`MAX_ARTIST_COLORS` values with most tracks (artists, folders)."""
    counts = pd.Series([v for v in values if v is not None], dtype=object).value_counts(sort=False)
    top = sorted(counts.index, key=lambda name: (-counts[name], name.casefold(), name))[:MAX_ARTIST_COLORS]
    return label_colors(top)


def _file_names(paths: list[str | None]) -> list[str | None]:
    return [None if p is None else os.path.basename(p.rstrip("/\\")) or p for p in paths]


def page_neighbours(frame: pd.DataFrame, embeddings: np.ndarray | None, k: int = PAGE_NEIGHBOURS) -> dict:
    """The ``k`` nearest tracks of each point, as page rows, or nothing when there are too many points.

    ``embeddings`` [shape=(len(frame), d)] are in the frame's row order."""

    if embeddings is None or len(frame) < 2 or len(frame) > PAGE_NEIGHBOURS_MAX_TRACKS:
        return {"similar": None, "similarDist": None}
    indices, distances = all_nearest(embeddings, k)
    return {"similar": indices.tolist(), "similarDist": np.round(distances.astype(np.float64), 4).tolist()}


def page_artist_neighbours(frame: pd.DataFrame, embeddings: np.ndarray | None, artists: list[str],
                           k: int = PAGE_ARTISTS) -> list[list[list[float]]] | None:
    """For each artist code (index into ``artists``), its ``k`` nearest artists as ``[code, energy
    distance]`` (see :mod:`melodex.analysis.artists`), or None for a store too big or without
    embeddings."""
    if embeddings is None or len(frame) > PAGE_ARTISTS_MAX_TRACKS or len(artists) < 2:
        return None
    names, matrix = artist_distance_matrix(Collection.from_frame(frame, embeddings))
    code = {name: c for c, name in enumerate(artists)}
    near: list[list[list[float]]] = [[] for _ in artists]
    for i, name in enumerate(names):
        order = [j for j in np.argsort(matrix[i], kind="stable") if j != i][:k]
        near[code[name]] = [[code[names[j]], round(float(matrix[i, j]), 4)] for j in order]
    return near


def page_clusters(frame: pd.DataFrame, embeddings: np.ndarray | None) -> dict:
    """Each point's cluster as ``melodex playlist --clusters auto`` finds it (HDBSCAN, see
    :func:`melodex.analysis.playlists.cluster_labels`; ``--clusters 12``, KMeans, above
    :data:`PAGE_CLUSTERS_AUTO_MAX_TRACKS` tracks), numbered by size and named as its playlist would
    be; ``{"cluster": None}`` for a store too big or without embeddings."""
    if embeddings is None or len(frame) < 2 or len(frame) > PAGE_CLUSTERS_MAX_TRACKS:
        return {"cluster": None, "clusters": [], "clusterColors": [], "clusterMethod": None}
    collection = Collection.from_frame(frame, embeddings)
    k = None if len(frame) <= PAGE_CLUSTERS_AUTO_MAX_TRACKS else min(PAGE_CLUSTERS_K, len(frame))
    labels = cluster_labels(collection, k)
    found, counts = np.unique(labels, return_counts=True)
    order = [int(found[k]) for k in np.lexsort((found, -counts))]
    code = {label: k for k, label in enumerate(order)}
    names = [f"{k + 1}. {cluster_name(collection, np.flatnonzero(labels == label).tolist())}"
             for k, label in enumerate(order)]
    colors = [PALETTE[k] if k < len(PALETTE) else OTHER_COLOR for k in range(len(order))]
    return {"cluster": [code[int(label)] for label in labels], "clusters": names, "clusterColors": colors,
            "clusterMethod": f"playlist --clusters {'auto' if k is None else k}"}


def page_data(frame: pd.DataFrame, *, page_dir: Path, audio_base: str | None, title: str,
              color_by: str = "genre", embeddings: np.ndarray | None = None, api_base: str | None = None) -> dict:
    """The compact per-point arrays the page reads (one list per field, not one dict per point).

    ``embeddings`` [shape=(len(frame), d)], in the frame's row order, add each point's
    :data:`PAGE_NEIGHBOURS` most similar tracks (see :func:`page_neighbours`), the nearest artists
    and the clusters. ``api_base`` (``"/api/"`` under ``melodex serve``) makes the page ask the
    server for its instant mixes."""

    n = len(frame)
    artist, artists = _codes(color_values(frame, "artist"))
    genre, genres = _codes(label_strings(frame.get("genre"), n))
    pred, preds = _codes(label_strings(frame.get("predicted_label"), n))
    folder, folders = _codes(label_strings(frame.get("folder"), n))
    colors = category_colors(frame)
    conf = None
    if "confidence" in frame:
        numbers = pd.to_numeric(frame["confidence"], errors="coerce")
        conf = np.round(numbers.to_numpy("float64", na_value=np.nan), 3)
    paths = label_strings(frame.get("path"), n)
    data = {
        "pageTitle": title,
        "colorBy": color_by,
        "x": np.round(frame["x"].to_numpy(dtype=np.float64), 4).tolist(),
        "y": np.round(frame["y"].to_numpy(dtype=np.float64), 4).tolist(),
        "id": frame["track_id"].astype(str).tolist(),
        "title": label_strings(frame.get("title"), n),
        "album": label_strings(frame.get("album"), n),
        "file": _file_names(paths),
        "date": label_strings(frame.get("date"), n),
        "year": track_years(frame),
        "artist": artist, "artists": artists,
        "artistColors": [colors["artist"].get(name, OTHER_COLOR) for name in artists],
        "genre": genre, "genres": genres, "genreColors": [colors["label"][name] for name in genres],
        "pred": pred, "preds": preds, "predColors": [colors["label"][name] for name in preds],
        "hasPredictions": bool(preds),  # False: a model without a genre head (the page offers no such colouring)
        "folder": folder, "folders": folders, "folderColors": [colors["folder"].get(v, OTHER_COLOR) for v in folders],
        "conf": [None] * n if conf is None else [None if v != v else v for v in conf.tolist()],  # NaN -> null
        "unknownColor": UNKNOWN_COLOR, "otherColor": OTHER_COLOR,
        "audioBase": audio_base,
        "url": None if audio_base else _audio_urls(paths, page_dir),
        "duration": _durations(frame),
        "nearDuplicate": DUPLICATE_DISTANCE, "durationTolerance": DURATION_TOLERANCE,
        "artistNear": page_artist_neighbours(frame, embeddings, artists),
        "api": api_base,
    }
    data.update(page_neighbours(frame, embeddings))
    data.update(page_clusters(frame, embeddings))
    return data


def _durations(frame: pd.DataFrame) -> list[float | None]:
    """Each track's duration in seconds (one decimal), None when unknown."""
    if "duration" not in frame:
        return [None] * len(frame)
    values = pd.to_numeric(frame["duration"], errors="coerce").to_numpy("float64", na_value=np.nan)
    return [None if np.isnan(v) else round(float(v), 1) for v in values]


def frame_embeddings(store_or_frames: Any, frame: pd.DataFrame) -> np.ndarray | None:
    """The store's embeddings in ``frame``'s row order, or None when not given a store."""

    if not hasattr(store_or_frames, "embeddings") or len(frame) > PAGE_NEIGHBOURS_MAX_TRACKS:
        return None
    tracks = store_or_frames.tracks()
    row_of = pd.Series(np.arange(len(tracks)), index=tracks["track_id"].astype(str))
    row_of = row_of[~row_of.index.duplicated(keep="last")]
    return store_or_frames.embeddings()[row_of.loc[frame["track_id"]].to_numpy()]


def script_json(data: Any) -> str:
    """JSON safe inside ``<script type="application/json">``: ``<``, ``>``, ``&`` as \\u escapes."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")


def render_html_map(store_or_frames: Any, *, page_dir: str | Path = ".", audio_base: str | None = None,
                    title: str = "Melodex map", color_by: str | None = None, api_base: str | None = None) -> str:
    """The map page as a string; see :func:`write_html_map` (``api_base``: see :func:`page_data`)."""

    frame = map_frame(store_or_frames)
    data = page_data(frame, page_dir=Path(page_dir).absolute(), audio_base=audio_base, title=title,
                     color_by=choose_color_by(frame, color_by), embeddings=frame_embeddings(store_or_frames, frame),
                     api_base=api_base)
    parts = {"__TITLE__": html.escape(title), "__PLOTLYJS__": get_plotlyjs(), "__DATA__": script_json(data),
             "__APP__": APP_JS}
    # one pass over the template: text put in is never scanned for placeholders again
    return re.sub("__(?:TITLE|PLOTLYJS|DATA|APP)__", lambda m: parts[m.group(0)], PAGE_TEMPLATE)


def write_html_map(store_or_frames: Any, path: str | Path, *, audio_base: str | None = None,
                   title: str = "Melodex map", color_by: str | None = None) -> Path:
    """Write a self-contained interactive map page to ``path`` (works offline, from file://).

    Points are WebGL markers coloured by genre, predicted genre, artist, year or folder (a selector;
    ``color_by`` the first, by default as :func:`choose_color_by` picks; no predicted genre is
    offered or shown for a model without a genre head),
    with a legend that counts each entry; hovering shows title, artist, album, date, genre,
    confidence, track id and file name; a click plays the track and, for a store of up to
    :data:`PAGE_NEIGHBOURS_MAX_TRACKS` tracks, lists its 10 most similar tracks, each playable.
    Audio URLs are relative to the page's folder, or ``audio_base + track_id`` when given
    (``"/audio/"`` under ``melodex serve``). Returns ``path``.
    """
    path = Path(path)
    page = render_html_map(store_or_frames, page_dir=path.parent, audio_base=audio_base, title=title,
                           color_by=color_by)
    with atomic_write(path, "w", encoding="utf-8") as handle:
        handle.write(page)
    return path


# ---------------------------------------------------------------------------------------------
# static figure
