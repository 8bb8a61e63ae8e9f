"""An artist's releases: which tracks form one, and when it came out.

A release is identified by the store's ``release_id`` (FMA's album id, a manifest's
``album_id``, else album title + album artist + year; see
:func:`melodex.library.metadata.release_identity`). Its date is the mean of its tracks'
release dates; a date that only says when a file was uploaded (:data:`UPLOAD_DATE_SOURCES`) is
not a release date, and a release without one is listed apart, never ordered by guess.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from melodex.library.metadata import release_identity

UPLOAD_DATE_SOURCES = ("track.date_created",)  # dates of an upload, not of a release


def fractional_year(date: str | None) -> float:
    """``"2004-07-02"`` -> 2004.5; ``"2004"`` -> 2004.5 (mid-year); unknown -> nan."""

    if not isinstance(date, str) or len(date) < 4 or not date[:4].isdigit():
        return float("nan")
    year = int(date[:4])
    try:
        day = dt.date.fromisoformat(date[:10]).timetuple().tm_yday
        return year + (day - 1) / 365.25
    except ValueError:
        return year + 0.5


def _column(part: pd.DataFrame, name: str) -> list:
    """A column as plain Python values (None for missing), or all None when the store lacks it."""
    if name not in part.columns:
        return [None] * len(part)
    return [None if v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v)) else v
            for v in part[name].astype(object)]


def release_keys(part: pd.DataFrame) -> list[str]:
    """The release of each row: its ``release_id``; in a store written before that column, the
    same identity made from album, album artist (or artist) and year; without an album,
    ``date:<date>`` (or ``track:<id>`` when undated), one release per date."""

    out = []
    columns = {name: _column(part, name) for name in ("release_id", "album", "album_artist", "artist", "date",
                                                       "track_id")}
    for i in range(len(part)):
        row = {name: values[i] for name, values in columns.items()}
        key = row["release_id"] or release_identity(row)
        out.append(key or (f"date:{row['date']}" if row["date"] else f"track:{row['track_id']}"))
    return out


def release_dates(part: pd.DataFrame) -> np.ndarray:
    """Each row's release date as a fractional year; nan when it has none (no date, or only
    an upload date from :data:`UPLOAD_DATE_SOURCES`)."""

    sources = _column(part, "date_source")
    return np.array([fractional_year(d) if s not in UPLOAD_DATE_SOURCES else float("nan")
                     for d, s in zip(_column(part, "date"), sources)], dtype=float)


def dated_releases(part: pd.DataFrame) -> tuple[list[str], np.ndarray, dict[str, float]]:
    """(release of each row, release date of each row, date of each dated release)."""
    keys, t = release_keys(part), release_dates(part)
    when: dict[str, list[float]] = {}
    for key, value in zip(keys, t):
        when.setdefault(key, [])
        if np.isfinite(value):
            when[key].append(value)
    return keys, t, {key: float(np.mean(v)) for key, v in when.items() if v}


def undated_releases(tracks: pd.DataFrame, rows: np.ndarray) -> pd.DataFrame:
    """The releases of ``rows`` that have no release date, listed apart and never ordered:
    release_id, album, n_tracks, date and date_source (an upload date, when one is known)."""

    part = tracks.iloc[rows]
    keys, _, dated = dated_releases(part)
    albums, dates, sources = _column(part, "album"), _column(part, "date"), _column(part, "date_source")
    found: dict[str, dict] = {}
    for i, key in enumerate(keys):
        if key in dated:
            continue
        entry = found.setdefault(key, {"release_id": key, "album": albums[i], "n_tracks": 0, "date": dates[i],
                                       "date_source": sources[i]})
        entry["n_tracks"] += 1
    return pd.DataFrame(list(found.values()), columns=["release_id", "album", "n_tracks", "date", "date_source"])
