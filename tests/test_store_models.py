"""One model per store (fingerprints, refusal, ``--reembed``), metadata updated in place, and the
store folder read by pandas, pyarrow and DuckDB."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from melodex.cli import main
from melodex.library.store import LibraryStore, resolved_path
from melodex.model.checkpoint import load_checkpoint, model_fingerprint


@pytest.fixture
def music(tmp_path, make_audio):
    for i in range(5):
        make_audio(f"music/s{i}.wav", seconds=1.0, sr=8000, freq=200 + 150 * i, channels=1)
    return tmp_path / "music"


@pytest.fixture
def models(tiny_checkpoint_factory):
    """Two different models: the fingerprints differ (labels and the classifier's shape)."""
    return tiny_checkpoint_factory(["Folk", "Pop", "Rock"], small=True), tiny_checkpoint_factory(["Jazz", "Rock"],
                                                                                                 small=True)


def _index(store, music, model, *extra) -> int:
    return main(["index", "--store", str(store), "--audio", str(music), "--model", str(model), "--num-workers", "0",
                 "--device", "cpu", "-q", *extra])


def _fp(model) -> str:
    return model_fingerprint(load_checkpoint(model))


def test_a_second_model_is_refused_with_one_line_naming_both(tmp_path, music, models, capsys):
    a, b = models
    store = tmp_path / "lib"
    assert _index(store, music, a) == 0
    capsys.readouterr()
    before = sorted(p.name for p in (store / "parts").iterdir())
    assert _index(store, music, b) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert _fp(a) in err and _fp(b) in err and "--reembed" in err and "--store" in err
    assert sorted(p.name for p in (store / "parts").iterdir()) == before  # nothing written
    tracks = LibraryStore(store).tracks()
    assert set(tracks["model_fingerprint"]) == {_fp(a)}  # recorded per row
    assert set(LibraryStore(store).models()) == {_fp(a)}  # and with the store (each part's metadata)


def test_reembed_gives_the_store_of_the_new_model(tmp_path, music, models):
    a, b = models
    store, clean = tmp_path / "lib", tmp_path / "clean"
    assert _index(store, music, a, "--manifest", str(_manifest(tmp_path, music))) == 0
    assert _index(store, music, b, "--reembed") == 0
    assert _index(clean, music, b) == 0
    got, want = LibraryStore(store), LibraryStore(clean)
    tg, tw = got.tracks().set_index("path"), want.tracks().set_index("path").loc[got.tracks()["path"]]
    assert set(tg["model_fingerprint"]) == {_fp(b)} and set(got.models()) == {_fp(b)}
    assert [c for c in tg.columns if c.startswith("prob:")] == ["prob:Jazz", "prob:Rock"]  # A's labels are gone
    assert list(tg["predicted_label"]) == list(tw["predicted_label"])
    np.testing.assert_allclose(got.embeddings(), want.embeddings()[[list(want.tracks()["path"]).index(p)
                                                                    for p in got.tracks()["path"]]], atol=1e-5)
    assert set(tg["artist"]) == {"Manifest Artist"}  # metadata kept through the re-embedding
    assert not (store / "_reembed").exists()
    assert _index(store, music, a) == 2  # now the old model is the stranger


def _manifest(tmp_path, music):
    path = tmp_path / "manifest.csv"
    rows = ["path,artist,album,date"] + [f"{p},Manifest Artist,Album {i},200{i}"
                                         for i, p in enumerate(sorted(music.glob("*.wav")))]
    path.write_text("\n".join(rows) + "\n")
    return path


def test_a_store_made_before_fingerprints_adopts_the_first_model(tmp_path, music, models, capsys):
    a, b = models
    store = tmp_path / "lib"
    assert _index(store, music, a) == 0
    for part in (store / "parts").glob("*.parquet"):  # as Melodex wrote stores before this change
        table = pq.read_table(part)
        table = table.drop_columns(["model_fingerprint"]).replace_schema_metadata(None)
        pq.write_table(table, part)
    assert LibraryStore(store).models() == {}
    capsys.readouterr()
    assert _index(store, music, a) == 0
    assert "no model is recorded for its 5 track(s)" in capsys.readouterr().err
    assert set(LibraryStore(store).models()) == {_fp(a)}
    assert set(LibraryStore(store).tracks()["model_fingerprint"]) == {_fp(a)}
    assert _index(store, music, b) == 2


def test_jsonl_of_unknown_model_is_refused_by_a_store_with_a_model(tmp_path, music, models, capsys):
    from tests._helpers_store import jsonl_line, write_jsonl

    a, _ = models
    store = tmp_path / "lib"
    assert _index(store, music, a) == 0
    jsonl = write_jsonl(tmp_path / "r.jsonl", [jsonl_line(str(tmp_path / "new.mp3"), np.ones(64), {"Folk": 1.0})])
    capsys.readouterr()
    assert main(["index", "--store", str(store), "--from-jsonl", str(jsonl), "-q"]) == 2
    assert "unknown model" in capsys.readouterr().err
    assert main(["index", "--store", str(store), "--from-jsonl", str(jsonl), "--model", str(a), "-q"]) == 0
    assert len(LibraryStore(store)) == 6


def test_metadata_sources_update_stored_tracks_without_decoding(tmp_path, music, models, capsys, monkeypatch):
    import melodex.inference.predictor

    a, _ = models
    store = tmp_path / "lib"
    assert _index(store, music, a) == 0
    before = LibraryStore(store).embeddings()
    assert LibraryStore(store).tracks()["artist"].isna().all()

    def no_decoding(*args, **kwargs):
        raise AssertionError("a stored file was decoded again")

    monkeypatch.setattr(melodex.inference.predictor.Predictor, "predict", no_decoding)
    capsys.readouterr()
    assert main(["index", "--store", str(store), "--audio", str(music), "--model", str(a), "--manifest",
                 str(_manifest(tmp_path, music)), "--device", "cpu"]) == 0
    assert "metadata updated for 5" in capsys.readouterr().err
    tracks = LibraryStore(store).tracks().set_index("path")
    first = tracks.loc[resolved_path(min(music.glob("*.wav")))]
    assert (first["artist"], first["album"], first["year"], first["source"]) == ("Manifest Artist", "Album 0",
                                                                                2000, "manifest")
    np.testing.assert_array_equal(LibraryStore(store).embeddings(), before)
    assert main(["index", "--store", str(store), "--audio", str(music), "--model", str(a), "--device", "cpu"]) == 0
    assert "metadata updated for 0" in capsys.readouterr().err  # without the manifest nothing is cleared
    assert set(LibraryStore(store).tracks()["artist"]) == {"Manifest Artist"}


def test_the_store_folder_reads_with_pandas_pyarrow_and_duckdb(tmp_path, rng):
    import duckdb
    import pyarrow.dataset as ds

    from tests._helpers_store import synthetic_store

    store, _ = synthetic_store(tmp_path / "lib", rng, n_per=10)
    store.add([])  # nothing
    tracks = store.tracks()
    store.save_coordinates(pd.DataFrame({"track_id": tracks["track_id"], "x": 0.0, "y": 1.0}), {"seed": 1})
    root = store.root
    frame = pd.read_parquet(root)
    assert len(frame) == len(tracks) and set(frame["track_id"]) == set(tracks["track_id"])
    assert ds.dataset(root, format="parquet").count_rows() == len(tracks)
    con = duckdb.connect()
    rows = con.execute(f"SELECT track_id, embedding FROM read_parquet('{root}/**/*.parquet') ORDER BY track_id") \
        .fetchall()
    assert [r[0] for r in rows] == sorted(tracks["track_id"])
    meta = json.loads(pq.read_schema(next((root / "parts").glob("*.parquet"))).metadata[b"melodex.embedding"])
    assert (meta["dtype"], meta["byte_order"], meta["dim"]) == ("float32", "little", 512)
    decoded = np.stack([np.frombuffer(blob, dtype="<f4", count=meta["dim"]) for _, blob in rows])
    order = np.argsort(tracks["track_id"].to_numpy())
    np.testing.assert_array_equal(decoded, store.embeddings()[order])
    assert store.coordinates()["y"].eq(1.0).all() and store.map_info() == {"seed": 1}


def test_fma_metadata_given_later_fills_the_stored_tracks(tmp_path, models, capsys):
    from melodex.demo.corpus import write_demo_corpus

    a, _ = models
    demo = write_demo_corpus(tmp_path / "demo", tracks_per_artist=1, seconds=1.0, seed=0, workers=1)
    store = tmp_path / "lib"
    args = ["index", "--store", str(store), "--audio", str(demo / "fma_small"), "--model", str(a),
            "--num-workers", "0", "--device", "cpu"]
    assert main(args) == 0
    assert LibraryStore(store).tracks()["artist"].isna().all()
    capsys.readouterr()
    assert main([*args, "--fma-metadata", str(demo / "fma_metadata")]) == 0
    err = capsys.readouterr().err
    assert "indexed 0 new track(s); 16 already present (metadata updated for 16)" in err
    tracks = LibraryStore(store).tracks()
    truth = json.loads((demo / "demo_truth.json").read_text())["tracks"]
    by_file = {int(p.rsplit("/", 1)[1][:6]): artist for p, artist in zip(tracks["path"], tracks["artist"])}
    assert by_file == {int(key): t["artist"] for key, t in truth.items()}
    assert set(tracks["source"]) == {"fma"} and tracks["year"].notna().all()


def test_tags_edited_after_indexing_update_the_store_on_the_next_run(tmp_path, make_audio, models, capsys):
    import mutagen

    a, _ = models
    flac = make_audio("tagged/song.flac", seconds=1.0, sr=8000, channels=1)
    make_audio("tagged/other.wav", seconds=1.0, sr=8000, freq=700, channels=1)
    store = tmp_path / "lib"
    assert _index(store, flac.parent, a) == 0
    assert LibraryStore(store).tracks()["artist"].isna().all()
    tags = mutagen.File(str(flac), easy=True)
    tags["artist"], tags["date"] = "Later Artist", "2019"
    tags.save()
    capsys.readouterr()
    assert main(["index", "--store", str(store), "--audio", str(flac.parent), "--model", str(a), "--device", "cpu"]) == 0
    assert "metadata updated for 1" in capsys.readouterr().err  # only the edited file was read again
    row = LibraryStore(store).tracks().set_index("path").loc[resolved_path(flac)]
    assert (row["artist"], row["year"], row["source"]) == ("Later Artist", 2019, "tags")


def test_reembed_waits_for_a_missing_file_unless_told_to_drop_it(tmp_path, music, models, capsys):
    a, b = models
    store = tmp_path / "lib"
    assert _index(store, music, a) == 0
    gone = sorted(music.glob("*.wav"))[2]
    gone.unlink()
    capsys.readouterr()
    reembed = ["index", "--store", str(store), "--model", str(b), "--reembed", "--num-workers", "0", "--device", "cpu"]
    assert main(reembed) == 1
    err = capsys.readouterr().err
    assert gone.name in err and "--drop-failed" in err
    assert set(LibraryStore(store).tracks()["model_fingerprint"]) == {_fp(a)} and len(LibraryStore(store)) == 5
    assert main([*reembed, "--drop-failed"]) == 0
    tracks = LibraryStore(store).tracks()
    assert len(tracks) == 4 and resolved_path(gone) not in set(tracks["path"])
    assert set(tracks["model_fingerprint"]) == {_fp(b)}


def test_similar_embeds_a_query_file_only_with_the_stores_model(tmp_path, music, models, make_audio, capsys):
    a, b = models
    store = tmp_path / "lib"
    assert _index(store, music, a) == 0
    query = make_audio("query.wav", seconds=2.0, freq=330.0)
    capsys.readouterr()
    assert main(["similar", str(query), "--store", str(store), "--model", str(b), "-k", "2", "-q"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and _fp(a) in err and _fp(b) in err and "give the store's model" in err
    assert main(["similar", str(query), "--store", str(store), "--model", str(a), "-k", "2", "-q"]) == 0
