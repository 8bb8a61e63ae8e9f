"""The ANN index: built once with a visible log, kept in the store folder, rebuilt (never used
stale) when the store changes, exact search below the size limit, recall against exact search."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.dataset as ds
import pytest

from melodex.analysis import ann, similarity
from melodex.analysis.ann import ANN_DIR, INDEX_NAME, INFO_NAME, AnnIndex, exact_top, recall_at
from melodex.analysis.similarity import SimilarityIndex, normalize_rows, similar
from melodex.cli import main
from melodex.library.store import LibraryStore, TrackRecord
from tests._helpers_store import clustered_embeddings, synthetic_store


def _similar_ann(store_dir, capsys, query="t0010"):
    assert main(["similar", query, "--store", str(store_dir), "--method", "ann", "--json"]) == 0
    captured = capsys.readouterr()
    return [n["track_id"] for n in json.loads(captured.out)["neighbours"]], captured.err


def test_the_index_is_built_once_with_a_log_and_kept_with_the_store(tmp_path, rng, capsys):
    store, _ = synthetic_store(tmp_path / "lib", rng, n_per=100, n_clusters=3)
    first, err = _similar_ann(store.root, capsys)
    assert "building it (none built yet)" in err and "ANN index built in" in err, err  # no silent wait
    info = json.loads((store.root / ANN_DIR / INFO_NAME).read_text())
    assert info["store_state"] == store.state() and info["rows"] == 300
    assert (store.root / ANN_DIR / INDEX_NAME).stat().st_size == info["index_size"]
    assert not [f for f in ds.dataset(store.root, format="parquet").files if ANN_DIR in f]  # Parquet readers skip it

    again, err = _similar_ann(store.root, capsys)
    assert "building" not in err and f"using {store.root / ANN_DIR}" in err, err
    assert again == first and "t0010" not in again
    exact = similar(store, "t0010", k=10, method="exact")
    assert len(set(exact["track_id"]) & set(first)) >= 9


def test_a_changed_store_rebuilds_the_index_and_finds_the_new_tracks(tmp_path, rng, capsys):
    store, _ = synthetic_store(tmp_path / "lib", rng, n_per=100, n_clusters=3)
    _similar_ann(store.root, capsys)
    twin = store.embeddings()[10] * 1.01  # a near copy of the query, added after the index was built
    LibraryStore(store.root).add([TrackRecord("new01", "/music/new01.mp3", twin, {"G0": 1.0}, title="New")])

    found, err = _similar_ann(store.root, capsys)
    assert "building it (the store has changed since it was built)" in err, err
    assert found[0] == "new01"  # an index of the old store could not return it
    info = json.loads((store.root / ANN_DIR / INFO_NAME).read_text())
    assert info["rows"] == 301 and info["store_state"] == LibraryStore(store.root).state()


def test_an_index_file_that_is_not_the_recorded_one_is_never_used(tmp_path, rng, capsys):
    store, _ = synthetic_store(tmp_path / "lib", rng, n_per=100, n_clusters=3)
    first, _ = _similar_ann(store.root, capsys)
    (store.root / ANN_DIR / INDEX_NAME).write_bytes(b"not a faiss index")
    found, err = _similar_ann(store.root, capsys)
    assert f"building it ({INDEX_NAME} is not the file that was recorded)" in err, err
    assert found == first

    info_path = store.root / ANN_DIR / INFO_NAME
    info = json.loads(info_path.read_text())
    info_path.write_text(json.dumps({**info, "kind": "IVF-Flat"}))  # as an earlier Melodex wrote it
    found, err = _similar_ann(store.root, capsys)
    assert "building it (it is a IVF-Flat index" in err, err
    assert found == first


def test_auto_searches_exactly_below_the_limit_and_uses_the_kept_index_above(tmp_path, rng, monkeypatch):
    store, _ = synthetic_store(tmp_path / "lib", rng, n_per=100, n_clusters=3)
    index = SimilarityIndex.for_store(store)
    assert index.method_ == "exact" and not (store.root / ANN_DIR).exists()
    monkeypatch.setattr(similarity, "EXACT_LIMIT", 100)
    assert SimilarityIndex.for_store(store).method_ == "ann"
    assert (store.root / ANN_DIR / INDEX_NAME).is_file()


@pytest.mark.parametrize("n", [50, 4000])
def test_recall_at_10_against_exact_search(rng, n):
    x, _ = clustered_embeddings(rng, n // 4, 4, dim=64, spread=0.6)
    unit = normalize_rows(x)
    ann = AnnIndex.build(unit)
    rows = rng.choice(len(unit), 100, replace=n < 100)
    queries = unit[rows]
    truth = exact_top(unit, queries, 11)
    found = np.stack([ann.search(q, 11)[0] for q in queries])
    assert recall_at(found, truth, rows) >= 0.95
    assert ann.info["recall_at_10"] >= 0.95 and 1 <= ann.info["nprobe"] <= ann.info["nlist"]


def test_a_large_index_finds_lists_through_groups_of_centroids_and_keeps_its_recall(rng, monkeypatch, tmp_path):
    """From TWO_LEVEL_FROM lists on (256; here 16, so that 6,000 vectors do), the lists come from
    two-level k-means and vectors find theirs among a few groups of centroids: the list is the
    nearest centroid's for nearly every vector, recall still meets the bar, and the index saved
    and loaded answers the same."""
    monkeypatch.setattr(ann, "TWO_LEVEL_FROM", 16)
    x, _ = clustered_embeddings(rng, 1000, 6, dim=64, spread=0.6)
    unit = normalize_rows(x)
    built = AnnIndex.build(unit, progress=False)
    assert built.info["nlist"] == 77 and built.info["fill_groups"] == 9
    groups = ann.CentroidGroups.train(unit[::2], 77, seed=0)
    assert len(groups.centroids) == 77 and sorted(np.concatenate(groups.members).tolist()) == list(range(77))
    exact_lists = np.argmax(unit @ groups.centroids.T, axis=1)
    assert np.mean(groups.nearest(unit) == exact_lists) >= 0.99

    rows = rng.choice(len(unit), 100, replace=False)
    truth = exact_top(unit, unit[rows], 11)
    found = np.stack([built.search(q, 11)[0] for q in unit[rows]])
    assert recall_at(found, truth, rows) >= 0.95 and built.info["recall_at_10"] >= 0.95
    built.save(tmp_path, "state")
    loaded, why = AnnIndex.load(tmp_path, "state", unit)
    assert loaded is not None, why
    assert all(np.array_equal(loaded.search(q, 11)[0], f) for q, f in zip(unit[rows], found))
