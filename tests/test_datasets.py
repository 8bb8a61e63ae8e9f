"""Dataset readers: FMA's tracks.csv, a folder per label, a CSV manifest, and load_dataset's choice."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pandas as pd
import pytest

from melodex.audio.encode import write_audio
from melodex.datasets import KINDS, load_dataset
from melodex.datasets.base import Dataset
from melodex.datasets.fma import (
    ALL_COLUMNS,
    load_fma,
    load_tracks,
    subset_of_folder,
    tracks_frame,
    write_tracks_csv,
)
from melodex.errors import DatasetError
from tests._helpers_datasets import SR, clip, fixture_records, write_fma_fixture

SAFE_KEY = re.compile(r"^[A-Za-z0-9._-]+$")


@pytest.fixture
def fma(tmp_path) -> Path:
    return write_fma_fixture(tmp_path)


def by_key(dataset: Dataset) -> dict:
    return {t.key: t for t in dataset}


def one_line(exc: pytest.ExceptionInfo) -> str:
    text = str(exc.value)
    assert "\n" not in text
    return text


# ----------------------------------------------------------------------------- tracks.csv


def test_written_tracks_csv_has_fmas_three_header_lines(tmp_path):
    path = write_tracks_csv(tracks_frame(fixture_records()), tmp_path / "tracks.csv")
    lines = path.read_text().splitlines()
    assert lines[0].startswith(",album,album")
    assert lines[1].startswith(",comments,date_created,date_released,engineer")
    assert lines[2].startswith("track_id,")
    assert lines[0].count(",") == len(ALL_COLUMNS) == 52
    assert lines[3].startswith("2,")


def test_load_tracks_parses_like_fma_utils_and_round_trips(tmp_path):
    frame = tracks_frame(fixture_records())
    tracks = load_tracks(write_tracks_csv(frame, tmp_path / "tracks.csv"))
    assert tracks.index.name == "track_id"
    assert list(tracks.index) == sorted(fixture_records())
    assert tracks.columns.nlevels == 2 and len(tracks.columns) == 52
    assert tracks.loc[2, ("track", "tags")] == ["demo", "it's"]
    assert tracks.loc[2, ("track", "genres_all")] == [12, 1]
    assert tracks.loc[2, ("album", "tags")] == []
    assert tracks.loc[2, ("album", "date_released")] == pd.Timestamp("2009-01-05")
    assert tracks.loc[2, ("track", "date_created")] == pd.Timestamp("2008-11-26 01:48:12")
    assert pd.isna(tracks.loc[3, ("album", "date_released")])
    assert tracks["set", "subset"].cat.ordered
    small = tracks[tracks["set", "subset"] <= "small"]
    assert 30 not in small.index and 2 in small.index
    assert isinstance(tracks["track", "genre_top"].dtype, pd.CategoricalDtype)
    assert tracks.loc[2, ("artist", "name")] == "Artist A"
    # writing what was read gives the same table back
    again = load_tracks(write_tracks_csv(tracks, tmp_path / "again.csv"))
    pd.testing.assert_frame_equal(again, tracks)


@pytest.mark.parametrize(
    "edit, expected",
    [
        (lambda f: f.drop(columns=[("set", "split")]), "('set', 'split')"),
        (lambda f: f.drop(columns=[("track", "genre_top")]), "('track', 'genre_top')"),
    ],
)
def test_a_missing_required_column_is_named(tmp_path, edit, expected):
    path = write_tracks_csv(edit(tracks_frame(fixture_records())), tmp_path / "tracks.csv")
    with pytest.raises(DatasetError) as exc:
        load_tracks(path)
    assert expected in one_line(exc) and "missing required column" in str(exc.value)


@pytest.mark.parametrize(
    "column, value, expected",
    [
        (("track", "genres"), "[1, 2", "track 5: column ('track', 'genres')"),
        (("album", "date_released"), "not a date", "track 5: column ('album', 'date_released')"),
        (("set", "subset"), "tiny", "track 5: ('set', 'subset') is 'tiny'"),
    ],
)
def test_a_bad_value_is_named_by_track_and_column(tmp_path, column, value, expected):
    records = fixture_records()
    records[5][column] = value
    path = write_tracks_csv(tracks_frame(records), tmp_path / "tracks.csv")
    with pytest.raises(DatasetError) as exc:
        load_tracks(path)
    assert expected in one_line(exc)


def test_a_plain_csv_is_not_taken_for_fma(tmp_path):
    path = tmp_path / "tracks.csv"
    path.write_text("track_id,genre\n2,Rock\n3,Pop\n")
    with pytest.raises(DatasetError) as exc:
        load_tracks(path)
    assert str(path) in one_line(exc)


def test_a_non_integer_track_id_is_named(tmp_path):
    path = write_tracks_csv(tracks_frame(fixture_records()), tmp_path / "tracks.csv")
    lines = path.read_text().splitlines()
    lines[4] = "abc" + lines[4][lines[4].index(",") :]
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DatasetError, match="data row 2: track_id 'abc'"):
        load_tracks(path)


def test_a_ragged_row_is_an_error_naming_the_line(tmp_path):
    path = write_tracks_csv(tracks_frame(fixture_records()), tmp_path / "tracks.csv")
    path.write_text(path.read_text() + "999" + ",x" * 80 + "\n")
    with pytest.raises(DatasetError, match="line 15"):
        load_tracks(path)


# ----------------------------------------------------------------------------- FMA as a Dataset


def test_fma_small_labels_splits_and_fields(fma, caplog):
    caplog.set_level(logging.INFO, logger="melodex")
    ds = load_dataset(fma)
    tracks = by_key(ds)
    assert ds.labels == ["Folk", "Hip-Hop", "Rock"]  # Pop is only in medium
    assert sorted(tracks) == ["000002", "000003", "000005", "000010", "000011", "000012", "098565"]
    assert {k: t.split for k, t in tracks.items()} == {
        "000002": "training",
        "000003": "validation",
        "000005": "test",
        "000010": "training",
        "000011": "test",
        "000012": "training",
        "098565": "training",
    }
    first = tracks["000002"]
    assert first.path == fma / "000" / "000002.mp3"
    fields = (first.label, first.artist, first.artist_id, first.title, first.album)
    assert fields == ("Rock", "Artist A", "7", "First", "Album One")
    assert (first.date, first.date_source) == ("2009-01-05", "album.date_released")
    assert (tracks["000003"].date, tracks["000003"].date_source) == ("2011-03-04", "track.date_created")
    assert tracks["098565"].path == fma / "098" / "098565.mp3"
    skipped = dict(ds.skipped)
    assert set(skipped) == {"000020", "000040", "099134"}
    assert "genre_top" in skipped["000020"] and "missing" in skipped["000040"]
    warnings = " ".join(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert "099134" in warnings and "000040" in warnings and "098565" in warnings


def test_an_explicit_subset_and_the_folder_name_choose_the_tracks(fma, tmp_path):
    medium = load_dataset(fma, subset="medium")
    assert "Pop" in medium.labels and "000030" in by_key(medium)
    assert subset_of_folder(tmp_path / "fma_small") == "small"
    assert subset_of_folder(tmp_path / "fma_medium") == "medium"
    assert (
        subset_of_folder(tmp_path / "fma_large") is None and subset_of_folder(tmp_path / "fma_full") is None
    )
    with pytest.raises(DatasetError, match="unknown FMA subset 'huge'"):
        load_fma(fma, subset="huge")


def test_the_corpus_root_and_an_explicit_metadata_dir_work_too(fma, tmp_path):
    assert len(load_dataset(tmp_path)) == len(load_dataset(fma))  # root holding fma_metadata/ + fma_small/
    elsewhere = tmp_path / "meta"
    elsewhere.mkdir()
    (tmp_path / "fma_metadata" / "tracks.csv").rename(elsewhere / "tracks.csv")
    assert len(load_dataset(fma, metadata_dir=elsewhere)) == 7


def test_a_wrong_data_dir_is_one_line_naming_it(tmp_path):
    with pytest.raises(DatasetError) as exc:
        load_dataset(tmp_path / "nowhere" / "fma_small")
    assert str(tmp_path / "nowhere" / "fma_small") in one_line(exc)


def test_a_missing_tracks_csv_is_one_line_naming_where_it_was_expected(tmp_path):
    (tmp_path / "fma_small" / "000").mkdir(parents=True)
    with pytest.raises(DatasetError) as exc:
        load_dataset(tmp_path / "fma_small")
    assert str(tmp_path / "fma_metadata" / "tracks.csv") in one_line(exc)
    with pytest.raises(DatasetError) as exc:
        load_dataset(tmp_path / "fma_small", metadata_dir=tmp_path / "meta")
    assert str(tmp_path / "meta" / "tracks.csv") in one_line(exc)


# ----------------------------------------------------------------------------- folder per label


def make_folder(root: Path, counts: dict[str, int]) -> None:
    for label, n in counts.items():
        for i in range(n):
            ext = (".wav", ".WAV", ".flac")[i % 3]
            sub = "live set/" if i % 4 == 0 else ""
            write_audio(root / label / f"{sub}{label.lower()} {i:02d}{ext}", clip(0.2, 200 + i), SR)


def test_folder_dataset_labels_keys_and_an_80_10_10_split(tmp_path, caplog):
    make_folder(tmp_path / "gtzan", {"blues": 10, "jazz": 20})
    write_audio(tmp_path / "gtzan" / "loose.wav", clip(0.2), SR)
    (tmp_path / "gtzan" / "jazz" / "notes.txt").write_text("not audio")
    ds = load_dataset(tmp_path / "gtzan", seed=3)
    assert ds.labels == ["blues", "jazz"] and len(ds) == 30
    assert {
        (lab, s): sum(t.label == lab and t.split == s for t in ds)
        for lab in ds.labels
        for s in ("training", "validation", "test")
    } == {
        ("blues", "training"): 8,
        ("blues", "validation"): 1,
        ("blues", "test"): 1,
        ("jazz", "training"): 16,
        ("jazz", "validation"): 2,
        ("jazz", "test"): 2,
    }
    keys = [t.key for t in ds]
    assert len(set(keys)) == len(keys) and all(SAFE_KEY.match(k) for k in keys)
    assert "jazz__live_set__jazz_00.wav" in keys
    assert [s for s in ds.skipped if s[0].endswith("loose.wav")]
    assert "loose.wav" in caplog.text


def test_folder_split_is_deterministic_for_a_seed(tmp_path):
    make_folder(tmp_path / "d", {"a": 12, "b": 12})
    first = {t.key: t.split for t in load_dataset(tmp_path / "d", seed=1)}
    assert first == {t.key: t.split for t in load_dataset(tmp_path / "d", seed=1)}
    assert first != {t.key: t.split for t in load_dataset(tmp_path / "d", seed=2)}


def test_an_empty_folder_is_an_error(tmp_path):
    (tmp_path / "empty" / "rock").mkdir(parents=True)
    with pytest.raises(DatasetError, match="no audio files"):
        load_dataset(tmp_path / "empty")


# ----------------------------------------------------------------------------- CSV manifest


@pytest.fixture
def audio_files(tmp_path) -> list[Path]:
    return [write_audio(tmp_path / "audio" / f"t{i}.wav", clip(0.2, 300 + i), SR) for i in range(6)]


def test_manifest_resolves_relative_paths_and_reads_its_columns(tmp_path, audio_files):
    manifest = tmp_path / "list.csv"
    manifest.write_text(
        "path,label,artist,date,title,album,split,mood\n"
        "audio/t0.wav,Rock,Ann,2004-05-06,One,LP,train,calm\n"
        "audio/t1.wav,Pop,Bob,2010-07-08 12:30:00,Two,,valid,\n"
        f"{audio_files[2]},Rock,,,,,test,loud\n"
        "audio/missing.wav,Pop,,,,,training,\n"
    )
    ds = load_dataset(manifest)
    tracks = {t.path.name: t for t in ds}
    assert ds.labels == ["Pop", "Rock"] and sorted(tracks) == ["t0.wav", "t1.wav", "t2.wav"]
    t0 = tracks["t0.wav"]
    assert t0.path == tmp_path / "audio" / "t0.wav"
    fields = (t0.artist, t0.date, t0.title, t0.album, t0.split)
    assert fields == ("Ann", "2004-05-06", "One", "LP", "training")
    assert t0.extra == {"mood": "calm"} and t0.key == "audio__t0.wav"
    t1 = tracks["t1.wav"]
    assert (t1.split, t1.album, t1.date, t1.date_source) == (
        "validation",
        None,
        "2010-07-08",
        "manifest.date",
    )
    assert ds.skipped == [("audio/missing.wav", "line 5: audio file missing")]


def test_manifest_without_split_gets_the_folder_split(tmp_path, audio_files):
    manifest = tmp_path / "m.csv"
    manifest.write_text("label,path\n" + "".join(f"L,audio/t{i}.wav\n" for i in range(6)))
    splits = [t.split for t in load_dataset(manifest)]
    assert sorted(splits) == ["test", "training", "training", "training", "training", "validation"]


@pytest.mark.parametrize(
    "body, expected",
    [
        ("path,genre\na.wav,Rock\n", "line 1: missing column label"),
        ("path,label\naudio/t0.wav,Rock,extra\n", "line 2: 3 fields, the header has 2"),
        ("path,label\naudio/t0.wav,\n", "line 2: empty label"),
        ("path,label\n,Rock\n", "line 2: empty path"),
        (
            "path,label,date\naudio/t0.wav,Rock,2020\naudio/t1.wav,Rock,05/06/2020\n",
            "line 3: date '05/06/2020'",
        ),
        ("path,label,split\naudio/t0.wav,Rock,holdout\n", "line 2: split 'holdout'"),
        (
            "path,label\naudio/t0.wav,Rock\n\naudio/./t0.wav,Pop\n",
            "line 4: path 'audio/./t0.wav' is listed twice",
        ),
        ("path,label,label\na,b,c\n", "line 1: column label appears twice"),
        (
            "path,label\naudio/t0.wav,Rock\naudio/t1.wav," + "x" * 5000 + "\n",
            "line 3: field 'label' is 5000 characters",
        ),
        ('path,label\naudio/t0.wav,"' + "y" * 200_000 + '"\n', "line 2: malformed CSV"),
        ("", "empty manifest"),
    ],
)
def test_malformed_manifests_name_the_line_and_the_problem(tmp_path, audio_files, body, expected):
    manifest = tmp_path / "bad.csv"
    manifest.write_text(body)
    with pytest.raises(DatasetError) as exc:
        load_dataset(manifest)
    assert expected in one_line(exc) and str(manifest) in str(exc.value)


def test_a_manifest_that_is_not_utf8_is_an_error(tmp_path):
    manifest = tmp_path / "latin.csv"
    manifest.write_bytes("path,label\ncaf\xe9.wav,Rock\n".encode("latin-1"))
    with pytest.raises(DatasetError, match="not a UTF-8 text file"):
        load_dataset(manifest)


# ----------------------------------------------------------------------------- load_dataset


def test_kinds_registry_and_bad_arguments(tmp_path, fma, monkeypatch):
    with pytest.raises(DatasetError, match="unknown dataset kind 'parquet'"):
        load_dataset(fma, kind="parquet")
    with pytest.raises(DatasetError, match="not tracks.csv"):
        load_dataset(tmp_path / "fma_metadata" / "tracks.csv")
    seen = {}

    def custom(path, *, metadata_dir=None, subset=None, seed=0):
        seen["args"] = (path, seed)
        return load_fma(fma)

    monkeypatch.setitem(KINDS, "custom", custom)
    assert len(load_dataset(fma, kind="custom", seed=5)) == 7 and seen["args"] == (fma, 5)
    assert load_dataset(fma, kind="folder").labels == ["000", "098", "099"]  # forced: FMA read as folders


def test_an_unreadable_tracks_csv_is_one_line(tmp_path, monkeypatch):
    path = write_tracks_csv(tracks_frame(fixture_records()), tmp_path / "tracks.csv")

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(pd, "read_csv", refuse)
    with pytest.raises(DatasetError) as exc:
        load_tracks(path)
    assert one_line(exc) == f"{path}: cannot read (Permission denied)"
