"""A store's tracks held in memory for listening tools: ids, metadata and unit embeddings.

Playlists, artist similarity, duplicates and the serve API all ask the same questions of a
store ("which row is this track id", "who is the artist of row i", "how far apart are rows i
and j"). :class:`Collection` loads the store once and answers them; it reads the store's
``duration`` column and never decodes audio.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from melodex.analysis.similarity import normalize_rows
from melodex.errors import QueryError

if TYPE_CHECKING:  # pragma: no cover
    from melodex.library.store import LibraryStore


def _strings(frame: pd.DataFrame, column: str, missing: str | None = None) -> np.ndarray:
    """Column ``column`` of ``frame`` as an object array of str, with ``missing`` for gaps."""
    if column not in frame.columns:
        return np.full(len(frame), missing, dtype=object)
    values = frame[column].astype(object).to_numpy()
    return np.array([missing if _absent(v) else str(v) for v in values], dtype=object)


def _absent(value: object) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value))


def artist_labels(artists: Sequence[str | None], artist_ids: Sequence[str | None]) -> np.ndarray:
    """Each track's artist as the listening tools tell artists apart [shape=(n,)] object.

    The name, except where artists who share a name have different artist_ids (FMA holds
    several "John Smith"s): there each track with an id is ``"name [artist_id]"``; a track of
    that name without an id keeps the bare name. None (or "") for no artist gives None.
    """
    ids_of: dict[str, set[str]] = {}
    for artist, artist_id in zip(artists, artist_ids):
        if artist and artist_id:
            ids_of.setdefault(artist, set()).add(artist_id)
    return np.array([(f"{a} [{i}]" if i and len(ids_of[a]) > 1 else a) if a else None
                     for a, i in zip(artists, artist_ids)], dtype=object)


def track_artist_labels(tracks: pd.DataFrame) -> np.ndarray:
    """:func:`artist_labels` of a ``store.tracks()``-shaped frame (its ``artist`` and ``artist_id``
    columns; a missing column counts as unknown everywhere)."""
    return artist_labels(_strings(tracks, "artist"), _strings(tracks, "artist_id"))


@dataclass(frozen=True)
class Collection:
    """Every track of a store, row-aligned.

    ``unit`` [shape=(n, d)] float32: L2-normalised embeddings, so ``1 - unit[i] @ unit[j]`` is the
    cosine distance of rows i and j. ``durations`` [shape=(n,)] float seconds, NaN when the store
    does not know. ``artists`` holds None for an unknown artist, ``artist_ids`` the catalogue's
    artist id (FMA's), None when unknown, and ``artist_labels`` each track's artist as
    :func:`artist_labels` tells them apart (namesakes with different artist_ids are two artists).
    ``artist_keys`` are those labels for artist caps, never None (an unknown artist's key is the
    track id), so tracks of unknown artists never count against each other.
    """

    track_ids: np.ndarray
    paths: np.ndarray
    titles: np.ndarray
    artists: np.ndarray
    artist_keys: np.ndarray
    artist_ids: np.ndarray
    artist_labels: np.ndarray
    genres: np.ndarray
    durations: np.ndarray
    unit: np.ndarray
    root: str = ""

    @classmethod
    def from_store(cls, store: LibraryStore) -> Collection:
        """Load ``store``; raises :class:`QueryError` when it holds no tracks."""
        tracks = store.tracks()
        if len(tracks) == 0:
            raise QueryError(f"the store at {store.root} is empty; run 'melodex index' first")
        return cls.from_frame(tracks, store.embeddings(), root=str(store.root))

    @classmethod
    def from_frame(cls, tracks: pd.DataFrame, embeddings: np.ndarray, *, root: str = "") -> Collection:
        """From a ``store.tracks()``-shaped frame and its embeddings [shape=(n, d)]."""
        ids = _strings(tracks, "track_id", "")
        artists, artist_ids = _strings(tracks, "artist"), _strings(tracks, "artist_id")
        labels = artist_labels(artists, artist_ids)
        keys = np.array([a if a else f"\0{t}" for a, t in zip(labels, ids)], dtype=object)
        genres = _strings(tracks, "genre")
        predicted = _strings(tracks, "predicted_label")
        genres = np.array([g if g else p for g, p in zip(genres, predicted)], dtype=object)
        durations = (pd.to_numeric(tracks["duration"], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
                     if "duration" in tracks.columns else np.full(len(tracks), np.nan))
        return cls(track_ids=ids, paths=_strings(tracks, "path"), titles=_strings(tracks, "title"),
                   artists=artists, artist_keys=keys, artist_ids=artist_ids, artist_labels=labels,
                   genres=genres, durations=durations, unit=normalize_rows(embeddings), root=root)

    def __len__(self) -> int:
        return len(self.track_ids)

    def row(self, track_id: str) -> int:
        """The row of ``track_id``; raises :class:`QueryError` naming the store when it is absent."""
        index = self._index()
        if str(track_id) not in index:
            raise QueryError(f"{track_id}: no such track_id in the store at {self.root}")
        return index[str(track_id)]

    @property
    def row_index(self) -> dict[str, int]:
        """Track id -> row."""
        return self._index()

    def _index(self) -> dict[str, int]:
        cached = self.__dict__.get("_row_index")
        if cached is None:
            cached = {t: i for i, t in enumerate(self.track_ids)}
            object.__setattr__(self, "_row_index", cached)
        return cached

    def distances_to(self, row: int) -> np.ndarray:
        """Cosine distance [shape=(n,)] of every row to ``row``, clipped to [0, 2]."""
        return np.clip(1.0 - self.unit @ self.unit[row], 0.0, 2.0)

    def distance(self, a: int, b: int) -> float:
        """Cosine distance of rows ``a`` and ``b``."""
        return float(np.clip(1.0 - self.unit[a] @ self.unit[b], 0.0, 2.0))

    def describe(self, row: int) -> dict[str, object]:
        """The JSON-ready fields of one track (no path: pages and APIs name tracks by id)."""
        duration = self.durations[row]
        return {"track_id": self.track_ids[row], "title": self.titles[row], "artist": self.artists[row],
                "genre": self.genres[row], "duration": None if np.isnan(duration) else round(float(duration), 3)}
