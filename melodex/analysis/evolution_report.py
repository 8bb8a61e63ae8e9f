"""Writing evolution results: PNG figures (matplotlib, Agg), CSV tables and self-contained HTML.

Every string that comes from a tag or a file name is HTML-escaped; figures are embedded in the
HTML as base64 PNG, so a report is one file that opens anywhere, offline.
"""

from __future__ import annotations

import base64
import html
import io
import math
import re
from dataclasses import asdict
from pathlib import Path
from typing import Any

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from melodex.analysis.evolution import ArtistDrift, rule_checks, rule_text
from melodex.analysis.palette import label_colors, model_labels
from melodex.util.atomic import atomic_write

_STYLE = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px;color:#222}
table{border-collapse:collapse;font-size:13px;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 6px;text-align:left}
th{background:#f3f3f3}tr.drift td{background:#fff3e0}img{max-width:100%}.note{color:#666;font-size:13px}"""


def stack_colors(prob_columns: list[str]) -> list[str]:
    """The colour of each ``prob:<label>`` column: the same per label as on the map and its figure."""

    colors = label_colors(model_labels(prob_columns))
    return [colors[name] for name in model_labels(prob_columns)]


def slug(name: str) -> str:
    """A file-name-safe form of an artist name (letters, digits, dashes), never empty."""
    text = re.sub(r"[^\w]+", "-", name, flags=re.UNICODE).strip("-").lower()[:60]
    return text or "artist"


def _figure():
    matplotlib.use("Agg")

    return plt


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    _figure().close(fig)
    return buf.getvalue()


def artist_figure(score: ArtistDrift, timeline: pd.DataFrame, tracks: pd.DataFrame,
                  coords: pd.DataFrame | None) -> bytes:
    """PNG: distance from the first work over time (with the fitted line), genre probabilities
    per release, and the trajectory on the map when one is saved."""
    plt = _figure()
    panels = 3 if coords is not None and "x" in timeline.columns else 2
    fig, axes = plt.subplots(1, panels, figsize=(5.2 * panels, 4))
    t, d = timeline["t"].to_numpy(float), timeline["dist_first"].to_numpy(float)
    ax = axes[0]
    ax.scatter(t, d, c=timeline["release"], cmap="viridis", s=28, label="tracks")
    releases = timeline.groupby("release").agg(t=("t", "mean"), d=("release_dist_first", "first"))
    ax.plot(releases["t"], releases["d"], "-o", color="#d62728", ms=4, label="release centroids")
    if math.isfinite(score.slope_per_year) and np.isfinite(d).sum() >= 2:
        ok = np.isfinite(d)
        fit = np.polyfit(t[ok], d[ok], 1)
        xs = np.array([t.min(), t.max()])
        ax.plot(xs, np.polyval(fit, xs), "--", color="#555", label="trend")
    ax.set_xlabel("date (year)")
    ax.set_ylabel("cosine distance from first work")
    ax.set_title(f"{score.artist[:40]}: spearman {score.spearman:.2f}" + (" (drifting)" if score.drifting else ""))
    ax.legend(fontsize=8)
    probs = [c for c in timeline.columns if c.startswith("prob:")]
    ax = axes[1]
    if probs:
        per_release = timeline.groupby("release")[probs + ["t"]].mean().sort_values("t")
        values = per_release[probs].fillna(0).to_numpy().T
        ax.stackplot(per_release["t"], values, labels=model_labels(probs), colors=stack_colors(probs), alpha=0.85)
        ax.set_ylim(0, 1)
        ax.legend(fontsize=7, loc="upper left", ncol=2)
    ax.set_xlabel("date (year)")
    ax.set_ylabel("mean genre probability per release")
    if panels == 3:
        ax = axes[2]
        ax.scatter(coords["x"], coords["y"], s=3, c="#ccc")
        ok = timeline["x"].notna()
        ax.plot(timeline.loc[ok, "x"], timeline.loc[ok, "y"], "-", color="#888", lw=0.8)
        ax.scatter(timeline.loc[ok, "x"], timeline.loc[ok, "y"], c=timeline.loc[ok, "t"], cmap="viridis", s=30)
        ax.set_title("trajectory on the map (dark = early)")
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    return _png(fig)


def collection_figure(years: pd.DataFrame, coords: pd.DataFrame | None = None) -> bytes:
    """PNG: how far each year's centroid is from the first year's and from the previous year's,
    and, with a saved map, the path of the year centroids across the map."""
    plt = _figure()
    on_map = coords is not None and {"x", "y"} <= set(years.columns)
    fig, axes = plt.subplots(1, 2 if on_map else 1, figsize=(12 if on_map else 7, 3.8), squeeze=False)
    ax = axes[0][0]
    if len(years):
        ax.plot(years["year"], years["dist_first"], "-o", label="from the first year")
        ax.plot(years["year"], years["dist_prev"], "-s", label="from the previous year")
        ax.legend(fontsize=8)
    ax.set_xlabel("year")
    ax.set_ylabel("cosine distance of year centroids")
    ax.set_title("the collection over time")
    if on_map:
        ax = axes[0][1]
        ax.scatter(coords["x"], coords["y"], s=3, c="#ccc")
        ax.plot(years["x"], years["y"], "-", color="#888", lw=0.8)
        points = ax.scatter(years["x"], years["y"], c=years["year"], cmap="viridis", s=40, zorder=3)
        fig.colorbar(points, ax=ax, label="year")
        ax.set_title("mean map position of each year's tracks")
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    return _png(fig)


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "&ndash;"
    try:
        if pd.isna(value):
            return "&ndash;"
    except (TypeError, ValueError):
        pass
    if isinstance(value, (float, np.floating)):
        return f"{value:.4g}"
    return html.escape(str(value))


def html_table(frame: pd.DataFrame, highlight: str | None = None, limit: int = 500) -> str:
    """An escaped HTML table of ``frame`` (first ``limit`` rows); rows where column ``highlight`` is true stand out."""
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    body = []
    for _, row in frame.head(limit).iterrows():
        cls = ' class="drift"' if highlight and bool(row.get(highlight)) is True else ""
        body.append(f"<tr{cls}>" + "".join(f"<td>{_cell(v)}</td>" for v in row.to_numpy()) + "</tr>")
    more = f'<p class="note">{len(frame) - limit} more rows in the CSV.</p>' if len(frame) > limit else ""
    return f"<table><tr>{head}</tr>{''.join(body)}</table>{more}"


def _img(png: bytes, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode("ascii")}">'


def _page(title: str, body: str) -> str:
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f"<style>{_STYLE}</style></head><body>{body}</body></html>\n")


def _score_block(score: ArtistDrift, map_note: str) -> str:
    fields = "".join(f"<tr><th>{html.escape(k)}</th><td>{_cell(v)}</td></tr>" for k, v in asdict(score).items())
    return f"<table>{fields}</table>{_rule_block(score)}<p class=\"note\">{html.escape(map_note)}</p>"


def _rule_block(score: ArtistDrift | None = None) -> str:
    """The drifting rule, written from the constants the score applies; with a score, each
    clause's value and whether it holds."""
    text = f'<p class="rule">{html.escape(rule_text())}.</p>'
    if score is None:
        return text
    verdict = {True: "met", False: "not met", None: "not applied"}
    rows = "".join(f"<tr><td>{html.escape(name)} {html.escape(op)} {threshold:g}</td><td>{_cell(value)}</td>"
                   f"<td>{verdict[met]}</td></tr>" for name, value, op, threshold, met in rule_checks(asdict(score)))
    return f"{text}<table><tr><th>clause</th><th>value</th><th>holds</th></tr>{rows}</table>"


def _undated_block(undated: pd.DataFrame | None) -> str:
    if undated is None or not len(undated):
        return ""
    return ("<h2>Releases without a release date</h2><p class=\"note\">Listed apart: they are not put in the "
            "order and not scored (a date that only says when a file was uploaded is not a release date).</p>"
            f"{html_table(undated)}")


def _timeline_columns(timeline: pd.DataFrame) -> pd.DataFrame:
    keep = ["date", "title", "album", "release", "dist_first", "release_dist_prev", "predicted_label"]
    return timeline[[c for c in keep if c in timeline.columns]]


def _write(path: Path, data: bytes | str) -> Path:
    mode = "wb" if isinstance(data, bytes) else "w"
    with atomic_write(path, mode, **({} if mode == "wb" else {"encoding": "utf-8"})) as handle:
        handle.write(data)
    return path


def _csv(frame: pd.DataFrame) -> str:
    return frame.to_csv(index=False)


def write_artist_report(out: Path, score: ArtistDrift, timeline: pd.DataFrame, tracks: pd.DataFrame,
                        coords: pd.DataFrame | None, undated: pd.DataFrame | None = None) -> list[Path]:
    """``artist-<slug>.html`` (self-contained), ``.png`` and ``.csv`` (the timeline) under ``out``;
    ``undated`` (releases without a release date) is listed apart in the HTML."""
    stem = f"artist-{slug(score.artist)}"
    png = artist_figure(score, timeline, tracks, coords)
    map_note = "Trajectory drawn on the saved map." if coords is not None else \
        "No map saved in the store, so no trajectory on the map (run 'melodex map' first)."
    body = (f"<h1>{html.escape(score.artist)}: evolution</h1>{_score_block(score, map_note)}"
            f"{_img(png, 'drift plot')}<h2>Tracks in date order</h2>{html_table(_timeline_columns(timeline))}"
            f"{_undated_block(undated)}")
    return [_write(out / f"{stem}.html", _page(f"{score.artist}: evolution", body)),
            _write(out / f"{stem}.png", png), _write(out / f"{stem}.csv", _csv(timeline))]


def write_collection_report(out: Path, scores: pd.DataFrame, years: pd.DataFrame,
                            timelines: dict[str, pd.DataFrame], tracks: pd.DataFrame,
                            coords: pd.DataFrame | None) -> list[Path]:
    """``evolution.html``, ``artists.csv``, ``collection_years.csv``, ``collection.png``, and an
    ``artist-<slug>.png``/``.csv`` for each drifting artist (also shown in the HTML)."""

    files = [_write(out / "artists.csv", _csv(scores)), _write(out / "collection_years.csv", _csv(years))]
    collection_png = collection_figure(years, coords)
    files.append(_write(out / "collection.png", collection_png))
    sections = []
    for row in scores[scores["drifting"]].to_dict(orient="records"):
        score = ArtistDrift(**row)
        timeline = timelines.get(score.artist)
        if timeline is None:
            continue
        png = artist_figure(score, timeline, tracks, coords)
        stem = f"artist-{slug(score.artist)}"
        files += [_write(out / f"{stem}.png", png), _write(out / f"{stem}.csv", _csv(timeline))]
        sections.append(f"<h3>{html.escape(score.artist)}</h3>{_img(png, score.artist)}"
                        f"{html_table(_timeline_columns(timeline))}")
    map_note = "" if coords is not None else "<p class=\"note\">No map saved: year centroids have no map position.</p>"
    drifting = int(scores["drifting"].sum()) if len(scores) else 0
    body = (f"<h1>Evolution of the collection</h1><p>{len(scores)} artist(s) scored; {drifting} drifting.</p>"
            f"<h2>Artists, most drifting first</h2>{_rule_block()}{html_table(scores, highlight='drifting')}"
            f"<h2>The collection by year</h2>{_img(collection_png, 'collection over time')}{map_note}"
            f"{html_table(years)}<h2>Drifting artists</h2>{''.join(sections) or '<p>None.</p>'}")
    files.insert(0, _write(out / "evolution.html", _page("Melodex: evolution", body)))
    return files
