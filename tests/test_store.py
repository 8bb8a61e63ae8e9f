"""The library store: append, dedupe, reload, row alignment, the saved map, missing fields."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from melodex.errors import MelodexError, StoreError
from melodex.library.columns import records_table
from melodex.library.indexing import IndexSummary, MetadataSources
from melodex.library.schema import MODEL_KEY, ModelStamp, stamp_table
from melodex.library.staging import StagedRun
from melodex.library.store import LibraryStore, TrackRecord, path_key, write_part_file, year_of

LABELS = ["Folk", "Pop", "Rock"]


def _record(i: int, rng: np.random.Generator, **kw) -> TrackRecord:
    probs = rng.dirichlet(np.ones(len(LABELS)))
    fields = dict(track_id=f"{i:06d}", path=f"/music/{i}.mp3", embedding=rng.standard_normal(512).astype(np.float32),
                  probabilities=dict(zip(LABELS, probs.tolist())), title=f"Song {i}", artist=f"Artist {i % 4}",
                  date=f"{2000 + i % 10}-01-15", date_source="tags", genre=LABELS[i % 3], duration=30.0 + i)
    fields.update(kw)
    return TrackRecord(**fields)


def test_nothing_is_created_until_a_write(tmp_path):
    store = LibraryStore(tmp_path / "lib")
    assert len(store) == 0 and store.keys() == set()
    assert store.tracks().empty and store.embeddings().shape == (0, 512)
    assert store.coordinates() is None and store.map_info() is None
    assert not (tmp_path / "lib").exists()


def test_add_then_reload_keeps_rows_aligned_with_embeddings(tmp_path, rng):
    records = [_record(i, rng) for i in range(25)]
    store = LibraryStore(tmp_path / "lib")
    assert store.add(records, batch_size=10) == 25
    assert len(list((tmp_path / "lib" / "parts").glob("part-*.parquet"))) == 3  # 10 + 10 + 5

    again = LibraryStore(tmp_path / "lib")  # a fresh reader sees the same thing
    tracks, emb = again.tracks(), again.embeddings()
    assert len(again) == 25 and emb.shape == (25, 512) and emb.dtype == np.float32
    assert list(tracks.index) == list(range(25))
    for row, rec in zip(tracks.itertuples(), records):
        assert row.track_id == rec.track_id
        np.testing.assert_array_equal(emb[row.Index], rec.embedding)
    first = tracks.iloc[3]
    assert first["year"] == 2003 and first["date"] == "2003-01-15" and first["genre"] == "Folk"
    probs = records[3].probabilities
    assert first["predicted_label"] == max(probs, key=probs.get)
    assert first["confidence"] == pytest.approx(max(probs.values()))
    assert first["prob:Pop"] == pytest.approx(probs["Pop"])


def test_add_skips_keys_present_and_never_rewrites_old_parts(tmp_path, rng):
    store = LibraryStore(tmp_path / "lib")
    store.add([_record(i, rng) for i in range(5)])
    part = next((tmp_path / "lib" / "parts").glob("part-*.parquet"))
    before = (part.stat().st_mtime_ns, part.read_bytes())
    added = store.add([_record(i, rng) for i in range(3, 8)] + [_record(7, rng)])  # 3,4 old; 7 twice
    assert added == 3
    assert sorted(store.keys()) == [f"{i:06d}" for i in range(8)]
    assert (part.stat().st_mtime_ns, part.read_bytes()) == before
    assert not list((tmp_path / "lib" / "parts").glob(".*tmp"))  # no temporary files left behind


def test_missing_metadata_stays_missing(tmp_path, rng):
    store = LibraryStore(tmp_path / "lib")
    store.add([TrackRecord("p1", "/a.wav", rng.standard_normal(512), {"Pop": 1.0})])
    row = store.tracks().iloc[0]
    for column in ("title", "artist", "artist_id", "album", "date", "date_source", "year", "genre"):
        assert row[column] is pd.NA, column
    assert np.isnan(row["duration"]) and row["source"] == "tags"


def test_parts_with_different_labels_are_unified(tmp_path, rng):
    store = LibraryStore(tmp_path / "lib")
    store.add([_record(0, rng)])
    store.add([_record(1, rng, probabilities={"Jazz": 0.9, "Pop": 0.1})])
    tracks = store.tracks()
    assert {"prob:Folk", "prob:Jazz", "prob:Pop", "prob:Rock"} <= set(tracks.columns)
    assert np.isnan(tracks.loc[0, "prob:Jazz"]) and tracks.loc[1, "prob:Jazz"] == pytest.approx(0.9)
    assert tracks.loc[1, "predicted_label"] == "Jazz"


def test_embedding_size_mismatch_is_refused(tmp_path, rng):
    store = LibraryStore(tmp_path / "lib")
    store.add([_record(0, rng)])
    with pytest.raises(StoreError, match="embedding has 64 values"):
        store.add([_record(1, rng, embedding=np.zeros(64))])
    assert len(store) == 1


def test_coordinates_round_trip_and_replace(tmp_path, rng):
    store = LibraryStore(tmp_path / "lib")
    store.add([_record(i, rng) for i in range(4)])
    coords = pd.DataFrame({"track_id": [f"{i:06d}" for i in range(4)], "x": [0.0, 1, 2, 3], "y": [3.0, 2, 1, 0]})
    store.save_coordinates(coords, {"n_neighbors": 15, "min_dist": 0.1})
    got = store.coordinates()
    assert list(got["track_id"]) == list(coords["track_id"]) and list(got["x"]) == [0, 1, 2, 3]
    assert store.map_info() == {"n_neighbors": 15, "min_dist": 0.1}
    assert json.loads((tmp_path / "lib" / "_map" / "map_info.json").read_text())["n_neighbors"] == 15
    store.save_coordinates(coords.iloc[:2], {"n_neighbors": 5})
    assert len(store.coordinates()) == 2 and store.map_info() == {"n_neighbors": 5}
    with pytest.raises(StoreError, match="lack"):
        store.save_coordinates(coords[["track_id", "x"]], {})


def test_five_thousand_rows_load_in_order(tmp_path):
    rng = np.random.default_rng(5)
    emb = rng.standard_normal((5000, 512)).astype(np.float32)
    store = LibraryStore(tmp_path / "lib")
    records = (TrackRecord(f"{i:06d}", f"/m/{i}.mp3", emb[i], {"Pop": 0.5, "Rock": 0.5}, source="fma")
               for i in range(5000))
    assert store.add(records, batch_size=700) == 5000
    fresh = LibraryStore(tmp_path / "lib")
    np.testing.assert_array_equal(fresh.embeddings(), emb)
    assert list(fresh.tracks()["track_id"]) == [f"{i:06d}" for i in range(5000)]


def test_path_key_is_stable_and_year_parsing(tmp_path):
    a = tmp_path / "x.mp3"
    assert path_key(a) == path_key(str(a)) == path_key(tmp_path / "." / "x.mp3")
    assert path_key(a) != path_key(tmp_path / "y.mp3")
    assert year_of("1999-04-01") == 1999 and year_of("2004") == 2004 and year_of(None) is None and year_of("n/a") is None


def test_unknown_source_is_refused(tmp_path, rng):
    with pytest.raises(StoreError, match="unknown source"):
        LibraryStore(tmp_path / "lib").add([_record(0, rng, source="web")])


def test_compact_merges_small_parts_keeping_order_and_content(tmp_path, rng):
    store = LibraryStore(tmp_path / "lib")
    records = [_record(i, rng) for i in range(50)]
    store.add(records[:30], batch_size=4)  # 8 parts
    before_tracks, before_emb = store.tracks(), store.embeddings()
    assert store.compact(target_rows=12) == 8
    parts = sorted(p.name for p in (tmp_path / "lib" / "parts").glob("part-*.parquet"))
    assert len(parts) == 3 and parts[0].startswith("part-000000-000002-")
    fresh = LibraryStore(tmp_path / "lib")
    pd.testing.assert_frame_equal(fresh.tracks(), before_tracks)
    np.testing.assert_array_equal(fresh.embeddings(), before_emb)
    assert fresh.add(records, batch_size=100) == 20  # new parts follow the compacted ones
    assert list(fresh.tracks()["track_id"]) == [r.track_id for r in records]


def test_parts_left_by_an_interrupted_compaction_are_ignored(tmp_path, rng):
    import shutil

    store = LibraryStore(tmp_path / "lib")
    store.add([_record(i, rng) for i in range(9)], batch_size=3)
    saved = tmp_path / "saved"
    shutil.copytree(tmp_path / "lib" / "parts", saved)
    store.compact(target_rows=100)
    for old in saved.iterdir():  # as if the process died after writing the merged part
        shutil.copy(old, tmp_path / "lib" / "parts" / old.name)
    fresh = LibraryStore(tmp_path / "lib")
    assert len(fresh.tracks()) == 9 and len(fresh) == 9 and len(fresh.keys()) == 9
    assert fresh.compact() == 3 and len(list((tmp_path / "lib" / "parts").iterdir())) == 1


def test_a_part_written_elsewhere_is_committed_in_one_piece_without_tracks_already_present(tmp_path, rng):
    """What ``index --engine ray`` does: a worker writes a part beside the store, the driver commits it."""
    store = LibraryStore(tmp_path / "lib")
    stamp = ModelStamp("abc123", "model.pth", tuple(LABELS))
    store.add([_record(0, rng)], model=stamp)
    staged = tmp_path / "lib" / "_staging" / "run" / "x.parquet.staged"
    write_part_file(stamp_table(records_table([_record(i, rng) for i in (0, 1, 2, 1)], 512), stamp, 512), staged)
    assert len(store) == 1  # a staged part is no part of the store
    present = store.keys()
    assert store.commit_part(staged, present) == 2  # 000000 is stored already; 000001 counts once
    assert not staged.exists() and present == {"000000", "000001", "000002"}
    assert store.tracks()["track_id"].tolist() == ["000000", "000001", "000002"]
    assert {pq.read_schema(p).metadata[MODEL_KEY] for p in store.part_files()} == {stamp.to_json()}
    narrow = tmp_path / "lib" / "_staging" / "run" / "y.parquet.staged"
    write_part_file(stamp_table(records_table([_record(5, rng, embedding=np.ones(8))], 8), stamp, 8), narrow)
    with pytest.raises(StoreError, match="embeddings have 8 values; this store holds 512"):
        store.commit_part(narrow, present)
    assert len(store) == 3


def test_a_staged_run_commits_what_its_rows_report_and_says_when_the_store_is_not_shared(tmp_path, rng):
    stamp = ModelStamp("abc123", "model.pth", tuple(LABELS))
    store = LibraryStore(tmp_path / "lib")
    run = StagedRun(store, MetadataSources(read_file_tags=False), stamp)
    write_part_file(stamp_table(records_table([_record(1, rng)], 512), stamp, 512), run.folder / "a.parquet.staged")
    summary = IndexSummary()
    rows = [{"file": "/music/1.mp3", "error": "", "part": "a.parquet.staged", "fatal": ""},
            {"file": "/music/bad.mp3", "error": "no such file", "part": "", "fatal": ""}]
    assert run.commit(rows, summary) == 1
    assert summary.failed == [("/music/bad.mp3", "no such file")]
    assert len(store) == 1 and not (store.root / "_staging").exists()
    for row, error in (({"part": "elsewhere.parquet.staged", "fatal": ""}, "every node of the cluster writes"),
                       ({"part": "", "fatal": "/lib/x: no space left on device"}, "no space left on device")):
        run = StagedRun(store, MetadataSources(read_file_tags=False), stamp)
        with pytest.raises(MelodexError, match=error):
            run.commit([{"file": "/music/2.mp3", "error": "", **row}], IndexSummary())
        assert not (store.root / "_staging").exists()
