"""How well an embedding retrieves tracks that belong together: top-k neighbour agreement.

For every track whose label (artist, release, style...) is known, take its ``k`` nearest
neighbours by cosine distance among the other labelled tracks and count the share that carry the
same label; the score is the mean share over those tracks. It is compared with **chance**, the
expected share for ``k`` neighbours drawn at random from the other labelled tracks: a track whose
label has ``n_c`` of the ``n`` labelled tracks expects ``(n_c - 1) / (n - 1)``, so chance is
``sum_c n_c (n_c - 1) / (n (n - 1))``, whatever ``k``. ``lift`` is score / chance.

Tracks with an unknown label (None, NaN, ``<NA>``, empty) take no part, as queries or as
neighbours. ``k`` is capped at ``n - 1``. Ties in distance are broken by row order.

:func:`neighbour_agreement` takes plain arrays, so a training run can score its validation
embeddings with it; :func:`retrieval_table` scores several embeddings of the same tracks
(a model's and the ``mfcc-stats`` baseline, say) by several label columns, and
:func:`write_report` writes the result as JSON and CSV, atomically.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from melodex.analysis.collection import track_artist_labels
from melodex.util.atomic import atomic_write

DEFAULT_K = 10
_BLOCK = 1024  # query rows per distance block: 1024 x n float32 at a time


@dataclass(frozen=True)
class Agreement:
    """One embedding's top-k agreement on one label column."""

    embedding: str  # a name for the embedding ("store", "mfcc-stats", a run...)
    label: str  # the label column ("artist", "release_id", "genre"...)
    k: int
    tracks: int  # labelled tracks that took part (queries, and the pool of neighbours)
    classes: int  # distinct labels among them
    agreement: float  # mean share of same-label tracks among each track's k nearest neighbours
    chance: float  # the same for random neighbours
    lift: float  # agreement / chance (nan when chance is 0)


def _known(labels: Sequence[Any]) -> np.ndarray:
    values = pd.Series(list(labels), dtype=object)
    blank = values.map(lambda v: isinstance(v, str) and not v.strip())
    return (~(values.isna() | blank)).to_numpy()


def nearest(embeddings: np.ndarray, k: int) -> np.ndarray:
    """Indices [shape=(n, k)] of each row's ``k`` nearest other rows by cosine distance, nearest first."""
    x = np.asarray(embeddings, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    x = x / np.where(norms > 0, norms, 1.0)
    n = len(x)
    out = np.empty((n, k), dtype=np.int64)
    for lo in range(0, n, _BLOCK):
        sims = x[lo:lo + _BLOCK] @ x.T
        rows = np.arange(sims.shape[0])
        sims[rows, lo + rows] = -np.inf  # never one's own neighbour
        part = np.argpartition(-sims, k - 1, axis=1)[:, :k] if k < n else np.argsort(-sims, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(sims, part, axis=1), axis=1, kind="stable")
        out[lo:lo + len(rows)] = np.take_along_axis(part, order, axis=1)
    return out


def neighbour_agreement(embeddings: np.ndarray, labels: Sequence[Any], *, k: int = DEFAULT_K,
                        name: str = "embedding", label: str = "label") -> Agreement:
    """Top-``k`` same-label agreement of ``embeddings`` [shape=(n, dim)] with ``labels`` (length n).

    Returns an :class:`Agreement`; with fewer than 2 labelled tracks, agreement and chance are nan.
    A ValueError when the lengths differ or ``k`` < 1.
    """
    x = np.asarray(embeddings, dtype=np.float32)
    if x.ndim != 2 or len(x) != len(labels):
        raise ValueError(f"{len(labels)} labels for embeddings of shape {x.shape}")
    if k < 1:
        raise ValueError("k must be at least 1")
    keep = _known(labels)
    codes, uniques = pd.factorize(pd.Series(list(labels), dtype=object)[keep].astype(str))
    n = len(codes)
    if n < 2:
        return Agreement(name, label, k, n, len(uniques), float("nan"), float("nan"), float("nan"))
    kk = min(k, n - 1)
    hits = codes[nearest(x[keep], kk)] == codes[:, None]
    sizes = np.bincount(codes).astype(np.float64)
    chance = float((sizes * (sizes - 1)).sum() / (n * (n - 1)))
    score = float(hits.mean())
    return Agreement(name, label, kk, n, len(uniques), score, chance, score / chance if chance > 0 else float("nan"))


def retrieval_table(embeddings: Mapping[str, np.ndarray], tracks: pd.DataFrame, columns: Sequence[str],
                    *, k: int = DEFAULT_K) -> list[Agreement]:
    """Every embedding (by name; rows aligned with ``tracks``) scored on every label column of ``tracks``.

    ``artist`` is scored as :func:`~melodex.analysis.collection.artist_labels` tells artists apart:
    two artists who share a name but not an artist_id are two labels, not one.
    """
    values = {column: list(track_artist_labels(tracks)) if column == "artist" else tracks[column].tolist()
              for column in columns}
    return [neighbour_agreement(vectors, values[column], k=k, name=name, label=column)
            for column in columns for name, vectors in embeddings.items()]


def label_columns(tracks: pd.DataFrame, wanted: Sequence[str]) -> list[str]:
    """The columns of ``wanted`` that ``tracks`` has with at least two known values."""
    return [c for c in wanted if c in tracks.columns and int(_known(tracks[c].tolist()).sum()) >= 2]


def format_table(rows: Sequence[Agreement]) -> str:
    """The scores as a text table, one line per (label, embedding)."""
    frame = pd.DataFrame([asdict(r) for r in rows], columns=list(Agreement.__dataclass_fields__))
    if frame.empty:
        return "(nothing to score)"
    shown = frame[["label", "embedding", "k", "tracks", "classes", "agreement", "chance", "lift"]]
    return shown.to_string(index=False, formatters={"agreement": "{:.3f}".format, "chance": "{:.3f}".format,
                                                    "lift": "{:.2f}x".format})


def write_report(rows: Sequence[Agreement], json_path: str | Path, csv_path: str | Path | None = None,
                 **context: Any) -> None:
    """Write ``rows`` as JSON (``{**context, "scores": [...]}``) and, when given, CSV; both atomically."""
    records = [asdict(r) for r in rows]
    payload = {**context, "scores": [{key: _finite(value) for key, value in r.items()} for r in records]}
    with atomic_write(json_path, "w") as handle:
        handle.write(json.dumps(payload, indent=2, default=_plain, allow_nan=False) + "\n")
    if csv_path is not None:
        with atomic_write(csv_path, "w", newline="") as handle:
            pd.DataFrame(records, columns=list(Agreement.__dataclass_fields__)).to_csv(handle, index=False)


def _finite(value: Any) -> Any:
    """NaN as null: JSON has no NaN."""
    return None if isinstance(value, float) and not np.isfinite(value) else value


def _plain(value: Any) -> Any:
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    return str(value)
