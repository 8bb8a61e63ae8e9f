"""The Free Music Archive (FMA) dataset, read as mdeff/fma's ``utils.load`` reads it.

Layout (as distributed)::

    data/fma_metadata/tracks.csv          # three header lines: group, field, "track_id"
    data/fma_small/000/000002.mp3         # audio at <audio_dir>/<id:06d>[:3]/<id:06d>.mp3

``tracks.csv`` has two-level columns (``('track', 'genre_top')``, ``('set', 'split')``, ...).
:func:`load_tracks` parses it into a DataFrame exactly like ``utils.load``: list columns through
``ast.literal_eval``, dates to datetime, ``('set', 'subset')`` an ordered categorical
``small < medium < large`` (so ``tracks[tracks['set', 'subset'] <= 'small']`` selects FMA-small).
:func:`load_fma` turns it into a :class:`~melodex.datasets.base.Dataset` with FMA's official
training/validation/test split and ``('track', 'genre_top')`` as the label.
:func:`write_tracks_csv` writes the same layout (for the demo corpus and test fixtures).
"""

from __future__ import annotations

import ast
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from melodex.datasets.base import SPLITS, Dataset, Track
from melodex.errors import DatasetError
from melodex.util.atomic import atomic_write

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

# FMA's tracks.csv columns, group by group, in the file's order (52 in all).
FMA_COLUMNS: dict[str, tuple[str, ...]] = {
    "album": tuple(
        "comments date_created date_released engineer favorites id information listens producer tags title"
        " tracks type".split()
    ),
    "artist": tuple(
        "active_year_begin active_year_end associated_labels bio comments date_created favorites id latitude"
        " location longitude members name related_projects tags website wikipedia_page".split()
    ),
    "set": ("split", "subset"),
    "track": tuple(
        "bit_rate comments composer date_created date_recorded duration favorites genre_top genres genres_all"
        " information interest language_code license listens lyricist number publisher tags title".split()
    ),
}
ALL_COLUMNS: tuple[tuple[str, str], ...] = tuple((g, f) for g, fields in FMA_COLUMNS.items() for f in fields)


def _pairs(text: str) -> tuple[tuple[str, str], ...]:
    return tuple(tuple(item.split(".")) for item in text.split())  # type: ignore[misc]


# Parsed as mdeff/fma's utils.load parses them.
LIST_COLUMNS = _pairs("track.tags album.tags artist.tags track.genres track.genres_all")
DATE_COLUMNS = _pairs(
    "track.date_created track.date_recorded album.date_created album.date_released artist.date_created"
    " artist.active_year_begin artist.active_year_end"
)
CATEGORY_COLUMNS = _pairs("track.genre_top track.license album.type album.information artist.bio")
REQUIRED_COLUMNS = (("set", "split"), ("set", "subset"), ("track", "genre_top"))
SUBSETS = ("small", "medium", "large")

# Known defects of FMA-small (documented in mdeff/fma's issues): no audio at all, or under 2 s.
KNOWN_EMPTY = frozenset({99134, 108925, 133297})
KNOWN_SHORT = frozenset({98565, 98567, 98569})

# Audio folder name -> subset it holds (None: every track).
_SUBSET_OF_FOLDER = {"fma_small": "small", "fma_medium": "medium", "fma_large": None, "fma_full": None}
AUDIO_FOLDERS = tuple(_SUBSET_OF_FOLDER)


def audio_path(audio_dir: str | Path, track_id: int) -> Path:
    """``<audio_dir>/<id:06d>[:3]/<id:06d>.mp3``, FMA's ``utils.get_audio_path``."""
    tid = f"{int(track_id):06d}"
    return Path(audio_dir) / tid[:3] / f"{tid}.mp3"


def load_tracks(path: str | Path) -> pd.DataFrame:
    """Read FMA's ``tracks.csv`` into a DataFrame indexed by ``track_id`` with two-level columns.

    Parameters
    ----------
    path : str or Path
        The ``tracks.csv`` file (FMA's or one written by :func:`write_tracks_csv`).

    Returns
    -------
    pandas.DataFrame [shape=(n_tracks, n_columns)]
        Indexed by the integer ``track_id``; list columns hold Python lists, date columns
        ``datetime64``, ``('set', 'subset')`` an ordered categorical small < medium < large.

    Raises
    ------
    DatasetError
        The file is missing, is not in FMA's layout, lacks a required column
        (``('set', 'split')``, ``('set', 'subset')``, ``('track', 'genre_top')``), or holds a
        value that does not parse; the message names the column and the track id.
    """

    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: FMA metadata not found (expected tracks.csv from fma_metadata.zip)")
    try:
        tracks = pd.read_csv(path, index_col=0, header=[0, 1], low_memory=False)
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{path}: not a UTF-8 text file ({exc.reason})") from None
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError, IndexError) as exc:
        raise DatasetError(f"{path}: not FMA's tracks.csv layout ({_first_line(exc)})") from None
    if not isinstance(tracks.columns, pd.MultiIndex) or tracks.columns.nlevels != 2:
        raise DatasetError(f"{path}: not FMA's tracks.csv layout (expected two header lines: group, field)")
    missing = [c for c in REQUIRED_COLUMNS if c not in tracks.columns]
    if missing:
        names = ", ".join(f"('{g}', '{f}')" for g, f in missing)
        raise DatasetError(f"{path}: missing required column {names} (is this FMA's tracks.csv?)")
    _check_index(path, tracks)

    for column in LIST_COLUMNS:
        if column in tracks.columns:
            tracks[column] = _parse_lists(path, tracks[column], column)
    for column in DATE_COLUMNS:
        if column in tracks.columns:
            tracks[column] = _parse_dates(path, tracks[column], column)
    subset = tracks["set", "subset"]
    bad = subset.notna() & ~subset.isin(SUBSETS)
    if bad.any():
        tid = tracks.index[bad.to_numpy()][0]
        raise DatasetError(
            f"{path}: track {tid}: ('set', 'subset') is {subset[tid]!r}, expected one of {SUBSETS}"
        )
    tracks["set", "subset"] = subset.astype(pd.CategoricalDtype(categories=SUBSETS, ordered=True))
    for column in CATEGORY_COLUMNS:
        if column in tracks.columns:
            tracks[column] = tracks[column].astype("category")
    return tracks


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _check_index(path: Path, tracks: pd.DataFrame) -> None:
    if tracks.index.name != "track_id":
        raise DatasetError(
            f"{path}: not FMA's tracks.csv layout (the third header line must start with 'track_id')"
        )
    ids = pd.to_numeric(pd.Series(tracks.index), errors="coerce")
    bad = ids.isna() | (ids % 1 != 0) | (ids < 0)
    if bad.any():
        row = int(bad.to_numpy().argmax())
        raise DatasetError(
            f"{path}: data row {row + 1}: track_id {tracks.index[row]!r} is not a non-negative integer"
        )
    tracks.index = pd.Index(ids.astype("int64").to_numpy(), name="track_id")
    dup = tracks.index.duplicated()
    if dup.any():
        raise DatasetError(f"{path}: track_id {tracks.index[dup][0]} appears more than once")


def _parse_lists(path: Path, column: pd.Series, name: tuple[str, str]) -> pd.Series:
    """``ast.literal_eval`` of each cell, once per distinct text (tags and genres repeat a lot).

    Every cell gets its own list object, so changing one track's list changes no other.
    """

    parsed: dict[str, list] = {}
    out = []
    for tid, value in column.items():
        if isinstance(value, list):
            out.append(value)
            continue
        if not isinstance(value, str):  # an empty cell (NaN): FMA writes '[]', be lenient
            out.append([])
            continue
        if value not in parsed:
            try:
                result = ast.literal_eval(value)
            except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
                result = None
            if not isinstance(result, list):
                raise DatasetError(
                    f"{path}: track {tid}: column {name} holds {value[:40]!r}, not a list literal"
                )
            parsed[value] = result
        out.append(list(parsed[value]))
    return pd.Series(out, index=column.index, dtype=object)


def _parse_dates(path: Path, column: pd.Series, name: tuple[str, str]) -> pd.Series:
    """Dates as datetime64; ISO 8601 text (FMA's) fast, anything else pandas can read slowly."""

    parsed = pd.to_datetime(column, errors="coerce", format="ISO8601")
    retry = column.notna() & parsed.isna()
    if retry.any():
        parsed[retry] = pd.to_datetime(column[retry], errors="coerce", format="mixed")
    bad = column.notna() & parsed.isna()
    if bad.any():
        tid = column.index[bad.to_numpy()][0]
        raise DatasetError(f"{path}: track {tid}: column {name} holds {str(column[tid])[:40]!r}, not a date")
    return parsed


def write_tracks_csv(df: pd.DataFrame, path: str | Path) -> Path:
    """Write ``df`` in FMA's exact ``tracks.csv`` layout, atomically.

    ``df`` has two-level columns (group, field) and is indexed by the track id; the file gets
    FMA's three header lines (``,album,album,...``, ``,comments,date_created,...``,
    ``track_id,,,...``). List cells are written as Python literals (``[21, 2]``), as FMA does.
    """

    if not isinstance(df.columns, pd.MultiIndex) or df.columns.nlevels != 2:
        raise ValueError("write_tracks_csv needs two-level columns (group, field)")
    out = df.copy()
    out.index = out.index.rename("track_id")
    out.columns = out.columns.rename([None, None])
    for column in LIST_COLUMNS:
        if column in out.columns:
            out[column] = [repr(list(v)) if isinstance(v, (list, tuple)) else v for v in out[column]]
    path = Path(path)
    with atomic_write(path, "w", newline="", encoding="utf-8") as handle:
        out.to_csv(handle)
    return path


def tracks_frame(records: Mapping[int, Mapping[tuple[str, str], Any]]) -> pd.DataFrame:
    """A DataFrame with every FMA column from sparse per-track records.

    ``records`` maps a track id to ``{(group, field): value}``; absent cells are empty
    (list columns ``[]``). The result is what :func:`write_tracks_csv` expects.
    """

    ids = sorted(int(t) for t in records)
    unknown = {c for rec in records.values() for c in rec} - set(ALL_COLUMNS)
    columns = list(ALL_COLUMNS) + sorted(unknown)
    data: dict[tuple[str, str], list] = {}
    for column in columns:
        empty: Any = [] if column in LIST_COLUMNS else None
        data[column] = [records[t].get(column, empty) for t in ids]
    frame = pd.DataFrame(data, index=pd.Index(ids, name="track_id"))
    frame.columns = pd.MultiIndex.from_tuples(columns)
    return frame


def subset_of_folder(audio_dir: str | Path) -> str | None:
    """The subset an audio folder holds: ``fma_small`` -> ``"small"``; ``fma_large``, ``fma_full`` -> None."""
    return _SUBSET_OF_FOLDER.get(Path(audio_dir).name.lower())


def default_metadata_dir(audio_dir: str | Path) -> Path:
    """``<audio_dir>/../fma_metadata``, where FMA's archives unpack it."""
    return Path(audio_dir).parent / "fma_metadata"


def load_fma(
    audio_dir: str | Path, metadata_dir: str | Path | None = None, subset: str | None = None
) -> Dataset:
    """FMA as a :class:`Dataset`: official splits, ``genre_top`` labels, album/track dates.

    Parameters
    ----------
    audio_dir : str or Path
        The folder of mp3s, e.g. ``data/fma_small``.
    metadata_dir : str or Path, optional
        Folder holding ``tracks.csv``; default ``<audio_dir>/../fma_metadata``.
    subset : {"small", "medium", "large"}, optional
        Keep tracks with ``('set', 'subset') <= subset``. Default: from the folder name
        (``fma_small`` -> small, ``fma_medium`` -> medium, ``fma_large``/``fma_full`` and any other
        name -> every track).

    Returns
    -------
    Dataset
        Labels are the sorted ``genre_top`` values present. Tracks without ``genre_top``,
        FMA-small's three known-empty files and tracks whose mp3 is missing are left out and
        listed in ``Dataset.skipped``, with a warning naming them.

    Raises
    ------
    DatasetError
        ``audio_dir`` is not a folder, ``tracks.csv`` is missing or malformed, or ``subset``
        is not a subset name.
    """
    audio_dir = Path(audio_dir)
    meta = Path(metadata_dir) if metadata_dir is not None else default_metadata_dir(audio_dir)
    tracks_csv = meta / "tracks.csv"
    if not audio_dir.is_dir():
        raise DatasetError(
            f"{audio_dir}: no such folder (expected FMA audio, e.g. data/fma_small/000/000002.mp3)"
        )
    if not tracks_csv.is_file():
        raise DatasetError(f"{tracks_csv}: not found (FMA's metadata is expected there; pass --metadata_dir)")
    if subset is None:
        subset = subset_of_folder(audio_dir)
    elif subset not in SUBSETS:
        raise DatasetError(f"unknown FMA subset {subset!r}; expected one of {SUBSETS}")

    tracks = load_tracks(tracks_csv)
    if subset is not None:
        tracks = tracks[(tracks["set", "subset"] <= subset).to_numpy()]
    kept, skipped = _build_tracks(tracks_csv, audio_dir, tracks)
    labels = sorted({t.label for t in kept if t.label is not None})
    name = f"fma_{subset}" if subset else audio_dir.name
    log.info("%s: %d tracks, %d labels, %d skipped", name, len(kept), len(labels), len(skipped))
    return Dataset(name=name, root=audio_dir, tracks=kept, labels=labels, skipped=skipped)


def _build_tracks(
    tracks_csv: Path, audio_dir: Path, tracks: pd.DataFrame
) -> tuple[list[Track], list[tuple[str, str]]]:
    def col(group: str, field: str) -> list:
        return list(tracks[group, field]) if (group, field) in tracks.columns else [None] * len(tracks)

    genre, split, subset = col("track", "genre_top"), col("set", "split"), col("set", "subset")
    artist, artist_id, title = col("artist", "name"), col("artist", "id"), col("track", "title")
    album, album_id, released, created = (
        col("album", "title"),
        col("album", "id"),
        col("album", "date_released"),
        col("track", "date_created"),
    )

    kept: list[Track] = []
    skipped: list[tuple[str, str]] = []
    left_out: dict[str, list[str]] = {"no_genre": [], "empty": [], "missing": [], "short": []}
    for i, tid in enumerate(tracks.index):
        key = f"{int(tid):06d}"
        label = _text(genre[i])
        path = audio_path(audio_dir, tid)
        why = _left_out(tid, label, path)
        if why is not None:
            left_out[why[0]].append(key)
            skipped.append((key, why[1]))
            continue
        if tid in KNOWN_SHORT:
            left_out["short"].append(key)
        split_name = _text(split[i])
        if split_name not in SPLITS:
            raise DatasetError(
                f"{tracks_csv}: track {tid}: ('set', 'split') is {split[i]!r}, expected one of {SPLITS}"
            )
        date, source = (
            _date(released[i], "album.date_released")
            or _date(created[i], "track.date_created")
            or (None, None)
        )
        kept.append(
            Track(
                key=key,
                path=path,
                label=label,
                split=split_name,
                artist=_text(artist[i]),
                artist_id=_id_text(artist_id[i]),
                title=_text(title[i]),
                album=_text(album[i]),
                date=date,
                date_source=source,
                extra={"track_id": int(tid), "subset": _text(subset[i]), "album_id": _id_text(album_id[i])},
            )
        )
    _report_left_out(left_out, audio_dir)
    return kept, skipped


def _left_out(tid: int, label: str | None, path: Path) -> tuple[str, str] | None:
    """Why a track cannot be used (a category and the reason recorded), or None."""
    if label is None:
        return "no_genre", "no ('track', 'genre_top')"
    if tid in KNOWN_EMPTY:
        return "empty", "known to hold no audio (FMA defect)"
    if not path.is_file():
        return "missing", f"audio file missing: {path}"
    return None


def _report_left_out(left_out: dict[str, list[str]], audio_dir: Path) -> None:
    if left_out["no_genre"]:
        log.info("%d tracks have no ('track', 'genre_top') and are left out", len(left_out["no_genre"]))
    if left_out["empty"]:
        log.warning("skipping %d tracks known to hold no audio: %s", len(left_out["empty"]), _ids(left_out["empty"]))
    if left_out["missing"]:
        log.warning("skipping %d tracks whose mp3 is missing under %s: %s", len(left_out["missing"]), audio_dir,
                    _ids(left_out["missing"]))
    if left_out["short"]:
        log.warning("%d tracks are known to be shorter than 2 s and will be padded: %s", len(left_out["short"]),
                    _ids(left_out["short"]))


def _ids(keys: list[str], limit: int = 20) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f" and {len(keys) - limit} more" if len(keys) > limit else "")


def _text(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and value != value):
        return None
    text = str(value).strip()
    return text or None


def _id_text(value: Any) -> str | None:
    if isinstance(value, float) and value == value and value.is_integer():
        return str(int(value))
    return _text(value)


def _date(value: Any, source: str) -> tuple[str, str] | None:
    if value is None or value != value:  # None, NaN, NaT
        return None
    try:
        return value.strftime("%Y-%m-%d"), source
    except (AttributeError, ValueError):
        return None
