"""The evolution figures and report read as a researcher would publish them.

Checked on the data and the drawn artists behind each PNG (matplotlib objects), plus the PNGs
kept in ``test-artifacts/``: p-values beside rho, "too few releases" instead of nan, year
ticks that do not overlap, legends outside the data, the number of tracks behind each point,
a trend fitted through the release centroids, labelled clusters, bootstrap intervals, year
centroids placed by the map's transform, and an HTML report with readable, explained columns
and a page for every artist with enough releases.
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from melodex.analysis import evolution_figures as figures
from melodex.analysis.evolution import (
    all_artists,
    artist_rows,
    artist_timeline,
    bootstrap_slope,
    drift_score,
    year_centroids,
)
from melodex.cli import main
from tests.test_evolution import _corpus

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    store = _corpus(tmp_path_factory.mktemp("evo") / "lib")
    tracks, emb = store.tracks(), store.embeddings()
    timeline = artist_timeline(tracks, emb, artist_rows(tracks, "Shifter"))
    return store, tracks, emb, timeline, drift_score(timeline, "Shifter", scale=0.5)


def _overlaps(boxes) -> bool:
    return any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])


def test_title_gives_rho_with_its_p_value_or_says_too_few_releases(corpus):
    *_, score = corpus
    assert re.fullmatch(r"spearman \d\.\d\d \(p = [0-9.e-]+\)", figures.rho_text(score))
    few = replace(score, spearman=float("nan"), p_value=float("nan"), n_releases=2)
    assert figures.rho_text(few) == "too few releases for a trend (2 dated)"


def test_drift_panel_trend_goes_through_the_centroids_and_counts_tracks(corpus):
    *_, timeline, score = corpus
    fig = Figure(figsize=(6, 4), layout="constrained")
    ax = fig.subplots()
    figures._drift_panel(ax, score, timeline)
    fig.canvas.draw()
    centroids = figures._release_points(timeline)
    trend = next(line for line in ax.get_lines() if line.get_label().startswith("trend of the centroids"))
    fit = np.polyfit(trend.get_xdata(), trend.get_ydata(), 1)
    residuals = centroids["d"] - np.polyval(fit, centroids["t"])
    assert abs(residuals.mean()) < 1e-9  # least squares through the centroids: neither above nor below
    counts = [t.get_text() for t in ax.texts if t.get_text().startswith("n=")]
    assert counts == [f"n={n}" for n in centroids["n"]]
    legend = ax.get_legend()
    assert not legend.get_window_extent().overlaps(ax.get_window_extent())  # outside the data
    assert any("95% CI" in t.get_text() for t in legend.get_texts())
    low, high = ax.get_xlim()
    labels = [t for t in ax.get_xticklabels() if t.get_text() and low <= t.get_position()[0] <= high]
    assert all(float(t.get_text()).is_integer() for t in labels) and 2 <= len(labels) <= 7
    assert not _overlaps([t.get_window_extent() for t in labels])


def test_year_ticks_never_overlap_on_a_long_span():
    fig = Figure(figsize=(4, 3), layout="constrained")
    ax = fig.subplots()
    ax.plot(np.linspace(1950.2, 2024.8, 50), np.zeros(50))
    figures.year_axis(ax)
    fig.canvas.draw()
    labels = [t for t in ax.get_xticklabels() if t.get_text()]
    assert not _overlaps([t.get_window_extent() for t in labels])
    assert all(re.fullmatch(r"\d{4}", t.get_text()) for t in labels)


def test_map_panels_name_the_clusters(corpus):
    store, tracks, *_ = corpus
    coords = pd.DataFrame({"track_id": tracks["track_id"], "x": np.arange(len(tracks), dtype=float),
                           "y": np.zeros(len(tracks))})
    tracks = tracks.assign(genre=["Folk" if i % 2 else "Rock" for i in range(len(tracks))])
    fig = Figure()
    ax = fig.subplots()
    figures._map_background(ax, coords, tracks)
    assert sorted(t.get_text() for t in ax.texts) == ["Folk", "Rock"]


def test_bootstrap_interval_holds_the_slope_and_excludes_zero_for_a_real_drift(corpus):
    *_, timeline, score = corpus
    assert score.slope_ci_low <= score.slope_per_year <= score.slope_ci_high
    assert score.slope_ci_low > 0
    assert bootstrap_slope(timeline) == bootstrap_slope(timeline)  # seeded
    flat = timeline.assign(dist_first=np.random.default_rng(0).permutation(timeline["dist_first"].to_numpy()))
    low, high = bootstrap_slope(flat)
    assert low < 0 < high or abs(low) < score.slope_ci_low  # a shuffled timeline has no clear trend


def test_year_centroids_are_mean_embeddings_placed_by_the_map(corpus):
    _, tracks, emb, *_ = corpus
    seen = []

    def place(vectors):
        seen.append(vectors)
        return np.column_stack([np.arange(len(vectors)), -np.arange(len(vectors))]).astype(float)

    coords = pd.DataFrame({"track_id": tracks["track_id"], "x": 0.0, "y": 0.0})
    years = year_centroids(tracks, emb, coords, place=place)
    unit = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    for k, year in enumerate(years["year"]):
        np.testing.assert_allclose(seen[0][k], unit[tracks["year"].to_numpy() == year].mean(axis=0), rtol=1e-5)
    assert years["x"].tolist() == list(range(len(years)))  # positions come from the placement, not 2-D means


def test_report_html_has_readable_columns_a_glossary_and_a_page_per_artist(corpus, tmp_path):
    store, tracks, emb, *_ = corpus
    out = tmp_path / "evo"
    assert main(["evolution", "--all", "--store", str(store.root), "--out", str(out), "-q"]) == 0
    page = (out / "evolution.html").read_text()
    assert '<div class="scroll"><table>' in page and "What the columns mean" in page
    assert "<th title=\"spearman\">Spearman rho</th>" in page and "<dt>p</dt>" in page
    scores = all_artists(tracks, emb, min_tracks=3)
    for artist in scores.loc[scores["n_releases"] >= 2, "artist"]:
        slug = re.sub(r"[^\w]+", "-", artist).strip("-").lower()
        assert (out / f"artist-{slug}.png").is_file() and f'href="artist-{slug}.html"' in page
    ARTIFACTS.mkdir(exist_ok=True)
    for name in ("collection.png", "artist-shifter.png"):
        (ARTIFACTS / f"evolution-{name}").write_bytes((out / name).read_bytes())


def test_artist_pages_can_be_capped_for_large_collections_and_drifting_artists_keep_theirs(corpus, tmp_path):
    store, tracks, emb, *_ = corpus
    out = tmp_path / "evo"
    assert main(["evolution", "--all", "--store", str(store.root), "--out", str(out), "--artist-pages", "2",
                 "-q"]) == 0
    pages = sorted(p.name for p in out.glob("artist-*.html"))
    scores = all_artists(tracks, emb, min_tracks=3)
    assert len(pages) == 2 and "artist-shifter.html" in pages  # the drifting artist is always among them
    assert len(scores) > 2
    assert main(["evolution", "--all", "--store", str(store.root), "--out", str(tmp_path / "all"),
                 "--artist-pages", "0", "-q"]) == 0
    assert len(list((tmp_path / "all").glob("artist-*.html"))) == int((scores["n_releases"] >= 2).sum())
