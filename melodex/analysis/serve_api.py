"""The JSON API ``melodex serve`` offers media players: similar tracks, paths and instant mixes.

* ``GET /api/similar/<track_id>?k=10``: the k nearest tracks (1 to :data:`MAX_K`);
* ``GET /api/path?from=<id>&to=<id>&length=10``: a path between two tracks;
* ``GET /api/playlist?seed=<id>[&seed=<id>...]&length=20&max_per_artist=2``: an instant mix.

Answers name tracks by ``track_id`` with their metadata and distances, never by path, and a
request names tracks only by id: nothing in a URL is ever opened as a file. An unknown id is a
404 and a malformed parameter a 400, both as ``{"error": "..."}``.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, unquote

import numpy as np

from melodex.analysis.collection import Collection
from melodex.analysis.playlist_files import playlist_document
from melodex.analysis.playlists import instant_mix, path_between
from melodex.errors import QueryError

API_PREFIX = "/api/"
MAX_K = 100
MAX_LENGTH = 200
Answer = tuple[HTTPStatus, dict[str, Any]]


def _int_param(query: dict[str, list[str]], name: str, default: int, low: int, high: int) -> int:
    values = query.get(name)
    if not values:
        return default
    try:
        value = int(values[-1])
    except ValueError:
        raise QueryError(f"{name} must be a whole number, not {values[-1]!r}") from None
    if not low <= value <= high:
        raise QueryError(f"{name} must be from {low} to {high}, not {value}")
    return value


def _one(query: dict[str, list[str]], name: str) -> str:
    values = query.get(name)
    if not values or not values[-1]:
        raise QueryError(f"the parameter {name} is missing")
    return values[-1]


class ListeningAPI:
    """Answers the API's requests from one :class:`Collection` loaded when the server starts."""

    def __init__(self, collection: Collection):
        self.collection = collection

    def answer(self, path: str, query_string: str) -> Answer:
        """``(status, JSON document)`` for a request path under :data:`API_PREFIX`."""
        query = parse_qs(query_string, keep_blank_values=True)
        route = path[len(API_PREFIX):]
        unknown = [t for t in self._named_tracks(route, query) if t not in self.collection.row_index]
        if unknown:
            return HTTPStatus.NOT_FOUND, {"error": f"{unknown[0]}: no such track_id"}
        try:
            if route.startswith("similar/"):
                return HTTPStatus.OK, self.similar(unquote(route[len("similar/"):]),
                                                   _int_param(query, "k", 10, 1, MAX_K))
            if route == "path":
                playlist = path_between(self.collection, _one(query, "from"), _one(query, "to"),
                                        _int_param(query, "length", 10, 2, MAX_LENGTH))
                return HTTPStatus.OK, playlist_document(playlist, self.collection)
            if route == "playlist":
                seeds = [s for s in query.get("seed", []) if s]
                if not seeds:
                    raise QueryError("the parameter seed is missing")
                playlist = instant_mix(self.collection, seeds, _int_param(query, "length", 20, 1, MAX_LENGTH),
                                       max_per_artist=_int_param(query, "max_per_artist", 2, 1, MAX_LENGTH))
                return HTTPStatus.OK, playlist_document(playlist, self.collection)
        except QueryError as exc:  # a missing or malformed parameter
            return HTTPStatus.BAD_REQUEST, {"error": str(exc)}
        return HTTPStatus.NOT_FOUND, {"error": "no such API endpoint"}

    @staticmethod
    def _named_tracks(route: str, query: dict[str, list[str]]) -> list[str]:
        """The track ids a request names (empty ones are left to the parameter checks)."""
        if route.startswith("similar/"):
            return [unquote(route[len("similar/"):])]
        if route == "playlist":
            return [n for n in query.get("seed", []) if n]
        if route == "path":
            return [n for n in query.get("from", [])[-1:] + query.get("to", [])[-1:] if n]
        return []

    def similar(self, track_id: str, k: int) -> dict[str, Any]:
        """The ``k`` tracks nearest to ``track_id`` (itself excluded), nearest first."""
        row = self.collection.row(track_id)
        distances = self.collection.distances_to(row)
        distances[row] = np.inf
        k = min(k, len(distances) - 1)
        rows = np.argpartition(distances, k - 1)[:k] if 0 < k < len(distances) else np.arange(0)
        rows = rows[np.lexsort((rows, distances[rows]))]
        return {"track": self.collection.describe(row),
                "similar": [{**self.collection.describe(int(r)), "distance": round(float(distances[r]), 6)}
                            for r in rows]}
