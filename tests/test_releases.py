"""Releases are albums, not album titles; undated releases are listed apart; the printed rule is the rule.

Stores are built the way a user builds them (``melodex index`` from an inference JSONL with
FMA's tracks.csv) and read through ``melodex evolution``.
"""

from __future__ import annotations

import html
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from melodex.cli import main
from melodex.datasets.fma import tracks_frame, write_tracks_csv
from melodex.library.store import LibraryStore
from tests._helpers_store import jsonl_line, write_jsonl

ARTIST = "Title Twins"


def _fma_store(tmp_path: Path, albums: list[dict], rng, *, drift: float = 0.0) -> Path:
    """An FMA catalogue of one artist's ``albums`` (id, title, released or None, created), two
    tracks each, indexed from a JSONL whose embeddings move by ``drift`` per album."""
    records, lines, track_id = {}, [], 2
    direction = rng.standard_normal(512)
    base = np.abs(rng.standard_normal(512))
    for k, album in enumerate(albums):
        for _ in range(2):
            records[track_id] = {
                ("set", "split"): "training", ("set", "subset"): "small", ("track", "genre_top"): "Rock",
                ("track", "title"): f"Song {track_id}", ("artist", "name"): ARTIST, ("artist", "id"): 42,
                ("album", "id"): album["id"], ("album", "title"): album["title"],
                ("album", "date_released"): album["released"], ("track", "date_created"): album["created"]}
            vec = base + drift * k * direction + 0.05 * rng.standard_normal(512)
            lines.append(jsonl_line(f"/fma_small/000/{track_id:06d}.mp3", vec, {"Rock": 0.9, "Pop": 0.1}))
            track_id += 1
    csv_path = write_tracks_csv(tracks_frame(records), tmp_path / "fma_metadata" / "tracks.csv")
    write_jsonl(tmp_path / "r.jsonl", lines)
    store = tmp_path / "lib"
    assert main(["index", "--store", str(store), "--from-jsonl", str(tmp_path / "r.jsonl"),
                 "--metadata", str(csv_path), "-q"]) == 0
    return store


def _albums(titles: list[str], first_year: int = 2001) -> list[dict]:
    return [{"id": 500 + k, "title": title, "released": f"{first_year + k}-06-01 00:00:00",
             "created": "2010-01-01 00:00:00"} for k, title in enumerate(titles)]


def _artist_report(tmp_path: Path, store: Path) -> tuple[pd.DataFrame, str]:
    """``evolution --artist``: the timeline CSV and the HTML page as text (tags removed, entities decoded)."""
    out = tmp_path / "evo"
    assert main(["evolution", "--artist", ARTIST, "--store", str(store), "--out", str(out), "-q"]) == 0
    page = (out / "artist-title-twins.html").read_text()
    return pd.read_csv(out / "artist-title-twins.csv"), html.unescape(re.sub(r"<[^>]+>", " ", page))


def test_two_albums_that_share_a_title_are_two_releases(tmp_path, rng):
    titles = ["Sessions", "Tapes", "Patterns", "Sessions", "Tapes", "Sessions"]  # 6 albums, 3 titles
    timeline, page = _artist_report(tmp_path, _fma_store(tmp_path, _albums(titles), rng))
    assert timeline["release"].nunique() == 6 and timeline["release_id"].nunique() == 6
    assert list(timeline.groupby("release")["album"].first()) == titles  # in date order
    assert re.search(r"n_releases\s*6\b", page)


def test_tagged_albums_sharing_a_title_stay_apart_by_year_and_artist(tmp_path, rng):
    from melodex.library.metadata import release_identity

    same = release_identity({"album": "Live", "artist": "A", "date": "2001-02-03"})
    assert same == release_identity({"album": " live", "artist": "a", "date": "2001"})
    assert same != release_identity({"album": "Live", "artist": "A", "date": "2005"})
    assert same != release_identity({"album": "Live", "album_artist": "B", "artist": "A", "date": "2001"})


def test_an_undated_album_is_listed_apart_never_ordered_first(tmp_path, rng):
    albums = _albums(["One", "Two", "Three", "Four", "Five", "Six"])
    # no album.date_released: only an upload date, earlier than every release, which used to put it first
    albums.append({"id": 900, "title": "Lost Tapes", "released": None, "created": "1998-01-01 00:00:00"})
    store = _fma_store(tmp_path, albums, rng)
    timeline, page = _artist_report(tmp_path, store)
    assert "Lost Tapes" not in set(timeline["album"])
    assert timeline.loc[timeline["release"] == 0, "album"].unique().tolist() == ["One"]
    assert "Releases without a release date" in page and "Lost Tapes" in page
    out = tmp_path / "all"
    assert main(["evolution", "--all", "--store", str(store), "--out", str(out), "-q"]) == 0
    artists = pd.read_csv(out / "artists.csv")
    assert artists.loc[0, ["n_releases", "n_undated_releases"]].tolist() == [6, 1]


def test_an_artist_meeting_the_printed_rule_is_drifting_and_one_missing_a_clause_is_not(tmp_path, rng):
    """The report prints every clause with its threshold from the code's constants; evaluating
    the printed clauses on the printed numbers gives the printed verdict."""
    cases = {"steady drift": (_albums([f"A{k}" for k in range(6)]), 1.0, True),
             "four releases": (_albums([f"A{k}" for k in range(4)]), 1.0, False)}
    for name, (albums, drift, expected) in cases.items():
        folder = tmp_path / name.replace(" ", "-")
        _, text = _artist_report(folder, _fma_store(folder, albums, rng, drift=drift))
        rule = re.search(r"drifting = (.+?) \(", text).group(1)
        clauses = re.findall(r"(\w+) (>=|<) ([\d.]+)", rule)
        assert {c[0] for c in clauses} >= {"n_releases", "spearman", "p_value", "displacement_ratio",
                                            "relative_displacement"}
        assert ("n_releases", ">=", "5") in clauses and ("relative_displacement", ">=", "0.2") in clauses
        values = {key: float(value) for key, value in re.findall(r"(\w+)\s+(-?[\d.]+(?:e-?\d+)?)\s", text)
                  if key in {c[0] for c in clauses}}
        meets = all(values[f] >= float(t) if op == ">=" else values[f] < float(t) for f, op, t in clauses)
        drifting = re.search(r"drifting\s+(True|False)", text).group(1) == "True"
        assert meets == drifting == expected, (name, values)


def test_every_demo_artist_has_its_six_albums(tmp_path, rng):
    """The demo plan gives every stable artist 6 albums (``album.id``), some sharing a title;
    all 6 are counted, and the one whose first album has no release date lists it apart."""
    from melodex.demo.plan import DRIFTER, NO_RELEASE_DATE_ARTIST, plan_corpus, tracks_table

    plan = plan_corpus(tracks_per_artist=18, seed=0)
    titles = pd.DataFrame([{"artist": t["artist"]["name"], "id": t["album_id"], "title": t["album"]} for t in plan])
    per_artist = titles.drop_duplicates("id").groupby("artist")["title"].agg(["size", "nunique"])
    assert (per_artist["nunique"] < per_artist["size"]).any()  # titles repeat: the case that used to merge albums
    csv_path = write_tracks_csv(tracks_table(plan, seconds=30.0), tmp_path / "fma_metadata" / "tracks.csv")
    write_jsonl(tmp_path / "r.jsonl", [jsonl_line(f"/demo/fma_small/{t['key'][:3]}/{t['key']}.mp3",
                                                  rng.random(512), {"Pop": 1.0}) for t in plan])
    assert main(["index", "--store", str(tmp_path / "lib"), "--from-jsonl", str(tmp_path / "r.jsonl"),
                 "--metadata", str(csv_path), "-q"]) == 0
    assert main(["evolution", "--all", "--store", str(tmp_path / "lib"), "--out", str(tmp_path / "evo"), "-q"]) == 0
    artists = pd.read_csv(tmp_path / "evo" / "artists.csv").set_index("artist")
    stable = artists.drop(index=DRIFTER[0])
    assert len(stable) == 15 and ((stable["n_releases"] + stable["n_undated_releases"]) == 6).all()
    late = sorted({t["artist"]["name"] for t in plan if t["artist"]["id"] == NO_RELEASE_DATE_ARTIST})
    assert stable.loc[list(late), ["n_releases", "n_undated_releases"]].values.tolist() == [[5, 1]]
    assert (stable.drop(index=list(late))["n_releases"] == 6).all()
    assert artists.loc[DRIFTER[0], "n_releases"] == 18  # singles: one release each


def test_a_store_written_before_release_columns_still_opens(tmp_path, rng):
    store = _fma_store(tmp_path, _albums(["Sessions", "Tapes", "Sessions"]), rng)
    for part in (store / "parts").glob("*.parquet"):  # as an older Melodex wrote it
        table = pq.read_table(part)
        pq.write_table(table.drop_columns(["release_id", "album_artist", "artists", "genres"]), part)
    tracks = LibraryStore(store).tracks()
    assert tracks["release_id"].isna().all() and tracks["artists"].isna().all()
    timeline, _ = _artist_report(tmp_path, store)
    assert timeline["release"].nunique() == 3  # the same title in another year is another release


@pytest.mark.parametrize("column", ["album_artist", "release_id"])
def test_release_columns_are_text(tmp_path, rng, column):
    store = _fma_store(tmp_path, _albums(["One", "Two"]), rng)
    tracks = LibraryStore(store).tracks()
    assert str(tracks[column].dtype).startswith("string")
    if column == "release_id":
        assert set(tracks[column]) == {"album:500", "album:501"}
