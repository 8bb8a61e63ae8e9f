"""The evolution figures: an artist's drift over time and the collection by year (matplotlib, Agg).

Every panel reads as a figure for a paper: Spearman's rho with its p-value in the title (or
"too few releases" where it is undefined), whole years on the time axis with ticks that never
overlap, legends outside the data, the number of tracks behind each release or year point, a
trend line fitted through the release centroids it is drawn over, and, on the map panels, the
clusters named by their dominant genre. Genre colours come from
:mod:`melodex.analysis.palette`, the same as on the map.
"""

from __future__ import annotations

import io
import math

import numpy as np
import pandas as pd
from matplotlib.figure import Figure  # no pyplot: the caller's backend and figures stay untouched
from matplotlib.ticker import FuncFormatter, MaxNLocator

from melodex.analysis.evolution import ArtistDrift
from melodex.analysis.palette import label_colors, model_labels

MAX_CLUSTER_LABELS = 8  # genre names written on a map panel
LEGEND_OUTSIDE = {"loc": "upper left", "bbox_to_anchor": (1.02, 1.0), "borderaxespad": 0.0, "fontsize": 8}


def stack_colors(prob_columns: list[str]) -> list[str]:
    """The colour of each ``prob:<label>`` column: the same per label as on the map and its figure."""

    colors = label_colors(model_labels(prob_columns))
    return [colors[name] for name in model_labels(prob_columns)]


def rho_text(score: ArtistDrift) -> str:
    """``spearman 0.83 (p = 0.004)``, or why there is none."""

    if math.isnan(score.spearman):
        return f"too few releases for a trend ({score.n_releases} dated)"
    return f"spearman {score.spearman:.2f} (p = {score.p_value:.3g})"


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    return buffer.getvalue()


def year_axis(ax) -> None:
    """Whole years on the x axis, at most 6 ticks, so labels never overlap."""

    ax.xaxis.set_major_locator(MaxNLocator(nbins=6, integer=True, min_n_ticks=2))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:.0f}"))


def _release_points(timeline: pd.DataFrame) -> pd.DataFrame:
    return timeline.groupby("release").agg(t=("t", "mean"), d=("release_dist_first", "first"),
                                           n=("track_id", "size")).sort_values("t")


def _drift_panel(ax, score: ArtistDrift, timeline: pd.DataFrame) -> None:
    t, d = timeline["t"].to_numpy(float), timeline["dist_first"].to_numpy(float)
    ax.scatter(t, d, color="#9aa5b1", s=14, label="tracks", zorder=2)
    releases = _release_points(timeline)
    ax.plot(releases["t"], releases["d"], "-", color="#d62728", lw=1, zorder=3)
    ax.scatter(releases["t"], releases["d"], s=18 + 10 * releases["n"], color="#d62728", zorder=4,
               label="release centroid (size: tracks)")
    for _, row in releases.iterrows():
        ax.annotate(f"n={int(row['n'])}", (row["t"], row["d"]), textcoords="offset points", xytext=(0, 7),
                    ha="center", fontsize=7, color="#7a1010")
    if len(releases) >= 3 and np.ptp(releases["t"].to_numpy()) > 0:  # fitted to the centroids it is drawn over
        fit = np.polyfit(releases["t"], releases["d"], 1)
        xs = np.array([releases["t"].min(), releases["t"].max()])
        ax.plot(xs, np.polyval(fit, xs), "--", color="#333", lw=1, zorder=5,
                label=f"trend of the centroids {fit[0]:+.3f}/year")
    if not math.isnan(score.slope_ci_low):
        ax.plot([], [], " ", label=f"track slope {score.slope_per_year:+.3f}/year\n"
                                   f"(95% CI {score.slope_ci_low:+.3f} to {score.slope_ci_high:+.3f})")
    year_axis(ax)
    ax.set_xlabel("release date (year)")
    ax.set_ylabel("cosine distance from the first work")
    ax.set_title(f"{score.artist[:40]}\n{rho_text(score)}" + (" \u2014 drifting" if score.drifting else ""),
                 fontsize=10)
    ax.legend(**LEGEND_OUTSIDE)


def _genre_panel(ax, timeline: pd.DataFrame) -> None:
    probs = [c for c in timeline.columns if c.startswith("prob:")]
    if not probs:
        ax.text(0.5, 0.5, "no genre probabilities in the store", ha="center", va="center", transform=ax.transAxes)
        return
    per_release = timeline.groupby("release")[probs + ["t"]].mean().sort_values("t")
    values = per_release[probs].fillna(0).to_numpy().T
    ax.stackplot(per_release["t"], values, labels=model_labels(probs), colors=stack_colors(probs), alpha=0.85)
    ax.set_ylim(0, 1)
    year_axis(ax)
    ax.set_xlabel("release date (year)")
    ax.set_ylabel("mean genre probability per release")
    ax.legend(**LEGEND_OUTSIDE)


def label_clusters(ax, background: pd.DataFrame) -> None:
    """Write the dominant genres' names at the median map position of their tracks."""

    if "genre" not in background:
        return
    named = background.dropna(subset=["genre"])
    largest = named["genre"].value_counts().index[:MAX_CLUSTER_LABELS]
    for genre, group in named[named["genre"].isin(largest)].groupby("genre"):
        ax.annotate(str(genre)[:24], (group["x"].median(), group["y"].median()), ha="center", va="center",
                    fontsize=8, color="#333", bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none",
                                                   "alpha": 0.7}, zorder=6)


def _map_background(ax, coords: pd.DataFrame, tracks: pd.DataFrame) -> None:
    background = coords[["track_id", "x", "y"]].astype({"track_id": str})
    if "genre" in tracks:
        genres = tracks[["track_id", "genre"]].astype({"track_id": str}).drop_duplicates("track_id", keep="last")
        background = background.merge(genres, on="track_id", how="left")
    ax.scatter(background["x"], background["y"], s=3, c="#d5d5d5", zorder=1)
    label_clusters(ax, background)
    ax.set_xticks([])
    ax.set_yticks([])


def _trajectory_panel(ax, fig: Figure, timeline: pd.DataFrame, tracks: pd.DataFrame, coords: pd.DataFrame) -> None:
    _map_background(ax, coords, tracks)
    ok = timeline["x"].notna()
    ax.plot(timeline.loc[ok, "x"], timeline.loc[ok, "y"], "-", color="#666", lw=0.8, zorder=3)
    points = ax.scatter(timeline.loc[ok, "x"], timeline.loc[ok, "y"], c=timeline.loc[ok, "t"], cmap="viridis",
                        s=30, zorder=4)
    if ok.any():
        bar = fig.colorbar(points, ax=ax, shrink=0.8)
        bar.set_label("release date (year)")
        bar.ax.yaxis.set_major_locator(MaxNLocator(nbins=5, integer=True))
    ax.set_title("trajectory on the map", fontsize=10)


def artist_figure(score: ArtistDrift, timeline: pd.DataFrame, tracks: pd.DataFrame,
                  coords: pd.DataFrame | None) -> bytes:
    """PNG: distance from the first work over time (release centroids with their track counts and
    the fitted trend), genre probabilities per release (not for a store without them: a model
    without a genre head), and the trajectory on the map when one is saved."""

    genres = any(c.startswith("prob:") for c in timeline.columns)
    on_map = coords is not None and "x" in timeline.columns
    panels = 1 + genres + on_map
    fig = Figure(figsize=(6.4 * panels, 4.2), layout="constrained")
    axes = fig.subplots(1, panels, squeeze=False)[0]
    _drift_panel(axes[0], score, timeline)
    if genres:
        _genre_panel(axes[1], timeline)
    if on_map:
        _trajectory_panel(axes[-1], fig, timeline, tracks, coords)
    return _png(fig)


def collection_figure(years: pd.DataFrame, coords: pd.DataFrame | None = None,
                      tracks: pd.DataFrame | None = None) -> bytes:
    """PNG: how far each year's centroid is from the first year's and from the previous year's
    (with the number of tracks per year), and, with a saved map, the year centroids placed on
    the map by its own transform."""

    on_map = coords is not None and {"x", "y"} <= set(years.columns)
    fig = Figure(figsize=(13 if on_map else 7.5, 4.2), layout="constrained")
    axes = fig.subplots(1, 2 if on_map else 1, squeeze=False)[0]
    ax = axes[0]
    if len(years):
        ax.plot(years["year"], years["dist_first"], "-o", ms=4, label="from the first year")
        ax.plot(years["year"], years["dist_prev"], "-s", ms=4, label="from the previous year")
        for _, row in years.iterrows():
            ax.annotate(f"{int(row['n_tracks'])}", (row["year"], row["dist_first"]), textcoords="offset points",
                        xytext=(0, 6), ha="center", fontsize=6, color="#555")
        ax.legend(title="numbers: tracks per year", title_fontsize=7, **LEGEND_OUTSIDE)
    year_axis(ax)
    ax.set_xlabel("year")
    ax.set_ylabel("cosine distance of year centroids")
    ax.set_title("the collection over time", fontsize=10)
    if on_map:
        ax = axes[1]
        _map_background(ax, coords, tracks if tracks is not None else pd.DataFrame({"track_id": []}))
        ax.plot(years["x"], years["y"], "-", color="#666", lw=0.8, zorder=3)
        points = ax.scatter(years["x"], years["y"], c=years["year"], cmap="viridis", s=16 + 4 * np.sqrt(years["n_tracks"]),
                            zorder=4)
        bar = fig.colorbar(points, ax=ax, shrink=0.8)
        bar.set_label("year")
        bar.ax.yaxis.set_major_locator(MaxNLocator(nbins=6, integer=True))
        ax.set_title("each year's mean embedding, placed on the map", fontsize=10)
    return _png(fig)
