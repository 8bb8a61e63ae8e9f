"""Top-k neighbour agreement (melodex/analysis/retrieval.py) and ``melodex evaluate``.

The measure is checked on data whose answer is known; the command on the small demo's CNN store
against chance and against MFCC statistics of the same tracks, computed from the audio or read
from a store made by ``melodex index --features mfcc-stats``.
"""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest

from melodex.analysis.retrieval import nearest, neighbour_agreement
from melodex.cli import main
from melodex.library.store import LibraryStore


def test_separated_groups_agree_fully_and_chance_follows_the_group_sizes(rng):
    sizes = [12, 6, 3]
    labels = [name for name, n in zip("abc", sizes) for _ in range(n)]
    centres = rng.normal(size=(3, 8)) * 50
    x = np.concatenate([centres[i] + rng.normal(size=(n, 8)) for i, n in enumerate(sizes)])
    score = neighbour_agreement(x, labels, k=2)
    n = sum(sizes)
    assert score.agreement == 1.0 and score.tracks == n and score.classes == 3
    assert score.chance == pytest.approx(sum(s * (s - 1) for s in sizes) / (n * (n - 1)))
    assert score.lift == pytest.approx(1.0 / score.chance)


def test_unknown_labels_take_no_part_and_k_is_capped(rng):
    x = rng.normal(size=(6, 4))
    labels = ["a", "a", None, "b", float("nan"), "  "]
    score = neighbour_agreement(x, labels, k=10)
    assert score.tracks == 3 and score.k == 2  # 3 labelled tracks: each has 2 others
    assert score.agreement == pytest.approx((1 / 2 + 1 / 2 + 0) / 3)
    assert score.chance == pytest.approx(2 * 1 / (3 * 2))
    lone = neighbour_agreement(x[:1], ["a"])
    assert lone.tracks == 1 and np.isnan(lone.agreement)
    with pytest.raises(ValueError):
        neighbour_agreement(x, labels[:3])


def test_random_embeddings_score_near_chance(rng):
    labels = rng.integers(0, 5, 2000).astype(str).tolist()
    score = neighbour_agreement(rng.normal(size=(2000, 16)), labels)
    assert score.agreement == pytest.approx(score.chance, abs=0.03)


def test_nearest_matches_a_brute_force_sort(rng):
    x = rng.normal(size=(50, 5))
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    sims = unit @ unit.T
    np.fill_diagonal(sims, -np.inf)
    np.testing.assert_array_equal(nearest(x, 4), np.argsort(-sims, axis=1, kind="stable")[:, :4])


@pytest.fixture(scope="module")
def demo_store(small_demo):
    status, _, out = small_demo
    assert status == 0
    return out / "library"


def _scores(path) -> dict[tuple[str, str], dict]:
    doc = json.loads(path.read_text(encoding="utf-8"))
    return {(row["label"], row["embedding"]): row for row in doc["scores"]}


def test_evaluate_scores_the_demo_cnn_against_chance_and_mfcc_stats(demo_store, small_demo_mfcc, tmp_path, capsys):
    out = tmp_path / "report" / "retrieval.json"
    assert main(["evaluate", "--store", str(demo_store), "--out", str(out), "--num-workers", "0", "-q"]) == 0
    table = capsys.readouterr().out
    assert "agreement" in table and "chance" in table and "mfcc-stats" in table
    scores = _scores(out)
    assert set(scores) == {(label, name) for label in ("artist", "release_id", "genre")
                           for name in ("store", "mfcc-stats")}
    for row in scores.values():
        assert row["k"] == 10 and row["tracks"] == 128
        assert row["agreement"] > 2 * row["chance"]  # both embeddings group the demo's artists and styles
    assert scores[("artist", "store")]["chance"] == pytest.approx(7 / 127)  # 16 artists of 8 tracks: 7 of 127 others
    with open(out.with_suffix(".csv"), newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 6 and {r["embedding"] for r in rows} == {"store", "mfcc-stats"}
    assert float(rows[0]["agreement"]) == pytest.approx(scores[(rows[0]["label"], rows[0]["embedding"])]["agreement"])

    # the same baseline read from a store of mfcc-stats (fitted on the same tracks) gives the same figures
    second = tmp_path / "second.json"
    assert main(["evaluate", "--store", str(demo_store), "--baseline-store", str(small_demo_mfcc),
                 "--out", str(second), "-q"]) == 0
    for key, row in _scores(second).items():
        assert row["agreement"] == pytest.approx(scores[key]["agreement"], abs=0.002)
    # and so does evaluating the mfcc-stats store itself, which is its own baseline
    third = tmp_path / "third.json"
    assert main(["evaluate", "--store", str(small_demo_mfcc), "--by", "artist", "--out", str(third), "-q"]) == 0
    (only,) = _scores(third).values()
    assert only["embedding"] == "mfcc-stats"
    assert only["agreement"] == pytest.approx(scores[("artist", "mfcc-stats")]["agreement"], abs=0.002)


def test_evaluate_refuses_what_it_cannot_score_in_one_line(demo_store, tmp_path, capsys):
    out = tmp_path / "r.json"
    assert main(["evaluate", "--store", str(demo_store), "--by", "nosuch", "--no-baseline", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "nosuch" in err and str(demo_store) in err
    assert main(["evaluate", "--store", str(demo_store), "--no-baseline", "--baseline-store", str(demo_store),
                 "--out", str(out)]) == 2
    assert "not both" in capsys.readouterr().err
    assert main(["evaluate", "--store", str(tmp_path / "missing"), "--out", str(out)]) == 2
    assert not out.exists()


def test_a_report_is_replaced_whole(demo_store, tmp_path):
    lib = tmp_path / "lib"
    shutil.copytree(demo_store, lib)
    out = tmp_path / "r.json"
    out.write_text("old")
    assert main(["evaluate", "--store", str(lib), "--no-baseline", "--by", "genre", "--out", str(out), "-q"]) == 0
    doc = json.loads(out.read_text(encoding="utf-8"))
    assert doc["baseline"] is None and [r["embedding"] for r in doc["scores"]] == ["store"]
    assert doc["tracks"] == len(LibraryStore(lib))
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".r.json")]  # no temporary left behind


def test_namesakes_are_two_artists_when_scoring_by_artist():
    """Two artists called "John Smith" (artist_ids 11 and 12) whose tracks lie side by side: scored
    by name alone, each track's neighbours would count as its own artist's."""
    import pandas as pd

    from melodex.analysis.retrieval import retrieval_table

    rng = np.random.default_rng(5)
    centre = rng.standard_normal(16)
    x = np.concatenate([centre + 0.01 * rng.standard_normal((6, 16)),  # both John Smiths, mixed
                        rng.standard_normal((6, 16)) * 5])  # six others, far apart
    tracks = pd.DataFrame({"artist": ["John Smith"] * 6 + [f"solo {i}" for i in range(6)],
                           "artist_id": ["11", "12"] * 3 + [str(20 + i) for i in range(6)]})
    (row,) = retrieval_table({"emb": x}, tracks, ["artist"], k=2)
    assert row.classes == 8  # John Smith [11], John Smith [12] and six solo artists
    # each John Smith track's 2 nearest are among the other 5, of which 2 share its artist_id
    assert row.agreement < 0.3
    (by_name,) = retrieval_table({"emb": x}, tracks.drop(columns="artist_id"), ["artist"], k=2)
    assert by_name.classes == 7 and by_name.agreement == pytest.approx(0.5)  # 6 of 12 tracks: all hits
