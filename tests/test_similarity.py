"""Nearest neighbours: the query is excluded, neighbours share its style, CLI table and JSON."""

from __future__ import annotations

import json

import numpy as np
import pytest

from melodex.analysis.similarity import SimilarityIndex, similar
from melodex.cli import main
from melodex.errors import QueryError
from tests._helpers_store import synthetic_store


def test_query_is_excluded_and_results_are_sorted(tmp_path, rng):
    store, _ = synthetic_store(tmp_path / "lib", rng)
    table = similar(store, "t0005", k=10)
    assert list(table.columns) == ["rank", "track_id", "title", "artist", "genre", "distance", "similarity"]
    assert len(table) == 10 and "t0005" not in set(table["track_id"])
    assert list(table["rank"]) == list(range(1, 11))
    assert np.all(np.diff(table["distance"]) >= 0)
    np.testing.assert_allclose(table["distance"] + table["similarity"], 1.0)


def test_neighbours_share_the_query_style_far_above_chance(tmp_path, rng):
    n_clusters = 4
    store, cluster = synthetic_store(tmp_path / "lib", rng, n_per=25, n_clusters=n_clusters)
    index = SimilarityIndex(store.embeddings())
    ids = store.tracks()["track_id"].tolist()
    same = []
    for row in range(0, len(ids), 5):
        table = similar(store, ids[row], k=10, index=index)
        rows = [ids.index(t) for t in table["track_id"]]
        same.append(np.mean(cluster[rows] == cluster[row]))
    rate = float(np.mean(same))
    chance = 1 / n_clusters
    assert rate >= 0.95 > 3 * chance, rate  # measured: 1.00 against a chance rate of 0.25


def test_query_by_path_and_by_vector(tmp_path, rng):
    store, _ = synthetic_store(tmp_path / "lib", rng)
    by_id = similar(store, "t0003", k=5)
    by_path = similar(store, "/music/3.mp3", k=5)
    assert list(by_id["track_id"]) == list(by_path["track_id"])
    vector = store.embeddings()[3]
    by_vector = similar(store, vector, k=5)
    assert by_vector.loc[0, "track_id"] == "t0003" and by_vector.loc[0, "distance"] == pytest.approx(0, abs=1e-6)


def test_exact_index_matches_brute_force(rng):
    x = rng.standard_normal((300, 16)).astype(np.float32)
    x[7] = 0  # a zero embedding is allowed: similarity 0 with everything
    index = SimilarityIndex(x)
    q = rng.standard_normal(16)
    rows, sims = index.query(q, 10, exclude={3})
    unit = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    brute = unit @ (q / np.linalg.norm(q))
    brute[3] = -np.inf
    np.testing.assert_array_equal(rows, np.argsort(-brute, kind="stable")[:10])
    np.testing.assert_allclose(sims, brute[rows], rtol=1e-5)


def test_unknown_query_and_empty_store_are_clear_errors(tmp_path, rng):
    from melodex.library.store import LibraryStore

    with pytest.raises(QueryError, match="empty"):
        similar(LibraryStore(tmp_path / "none"), "x")
    store, _ = synthetic_store(tmp_path / "lib", rng)
    with pytest.raises(QueryError, match="not a track_id or path"):
        similar(store, "nope")
    song = tmp_path / "new.wav"
    song.write_bytes(b"RIFF")
    with pytest.raises(QueryError, match="needs --model"):
        similar(store, str(song))


def test_cli_table_and_json(tmp_path, rng, capsys):
    synthetic_store(tmp_path / "lib", rng)
    assert main(["similar", "t0001", "--store", str(tmp_path / "lib"), "-k", "3", "-q"]) == 0
    out = capsys.readouterr().out
    assert "track_id" in out and "distance" in out and len(out.strip().splitlines()) == 4
    assert main(["similar", "t0001", "--store", str(tmp_path / "lib"), "-k", "3", "--json", "-q"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["query"] == "t0001" and len(doc["neighbours"]) == 3
    assert doc["neighbours"][0]["rank"] == 1 and "t0001" not in {n["track_id"] for n in doc["neighbours"]}
    assert main(["similar", "zzz", "--store", str(tmp_path / "lib")]) == 2
    assert "not a track_id or path" in capsys.readouterr().err


def test_new_audio_file_is_embedded_with_the_model(tmp_path, rng, make_audio, tiny_checkpoint, capsys):
    synthetic_store(tmp_path / "lib", rng)
    song = make_audio("query.wav", seconds=2.0)
    assert main(["similar", str(song), "--store", str(tmp_path / "lib"), "--model", str(tiny_checkpoint),
                 "--device", "cpu", "--json", "-q"]) == 0
    assert len(json.loads(capsys.readouterr().out)["neighbours"]) == 10


@pytest.mark.slow
def test_ann_path_finds_the_same_neighbours_mostly(tmp_path, rng):
    store, _ = synthetic_store(tmp_path / "lib", rng, n_per=100, n_clusters=3)
    exact = similar(store, "t0010", k=10, method="exact")
    approx = similar(store, "t0010", k=10, method="ann")
    assert "t0010" not in set(approx["track_id"])
    assert len(set(exact["track_id"]) & set(approx["track_id"])) >= 8


@pytest.mark.parametrize("block", [7, 64, 4096])
def test_all_nearest_equals_brute_force_in_any_block_size(rng, block):
    from melodex.analysis.neighbours import all_nearest

    x = rng.standard_normal((150, 24)).astype(np.float32)
    x[10] = x[11]  # a tie: the lower row wins, as in SimilarityIndex.query
    indices, distances = all_nearest(x, 10, block=block)
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    sims = unit @ unit.T
    np.fill_diagonal(sims, -np.inf)
    expected = np.argsort(-sims, axis=1, kind="stable")[:, :10]
    np.testing.assert_array_equal(indices, expected)
    np.testing.assert_allclose(distances, 1 - np.take_along_axis(sims, expected, axis=1), atol=1e-5)
    assert (indices != np.arange(150)[:, None]).all()  # never itself


def test_all_nearest_on_tiny_inputs(rng):
    from melodex.analysis.neighbours import all_nearest

    assert all_nearest(rng.standard_normal((1, 4)), 10)[0].shape == (1, 0)
    indices, _ = all_nearest(rng.standard_normal((3, 4)), 10)
    assert indices.shape == (3, 2) and sorted(indices[0].tolist()) == [1, 2]


def test_similarity_index_has_the_estimator_shape(rng):
    from melodex.analysis.similarity import SimilarityIndex

    x = rng.standard_normal((40, 8)).astype(np.float32)
    index = SimilarityIndex(method="exact")
    assert not hasattr(index, "unit_")  # __init__ only stores settings
    assert index.fit(x) is index and index.method_ == "exact" and index.unit_.shape == (40, 8)
    rows, _ = index.query(x[3], 5, exclude={3})
    np.testing.assert_array_equal(rows, SimilarityIndex(x).query(x[3], 5, exclude={3})[0])
