"""Writing evolution results: CSV tables, PNG figures and self-contained HTML reports.

Every string that comes from a tag or a file name is HTML-escaped; figures are embedded in the
HTML as base64 PNG, so a report is one file that opens anywhere, offline. Tables show readable
column names (:data:`COLUMN_NAMES`) explained in a glossary and scroll sideways inside the page
instead of overflowing it; the CSV files keep the field names.
"""

from __future__ import annotations

import base64
import html
import math
import re
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from melodex.analysis.evolution import ArtistDrift, ArtistKey, artist_key, rule_checks, rule_text
from melodex.analysis.evolution_figures import artist_figure, collection_figure
from melodex.util.atomic import atomic_write
from melodex.util.processes import ordered_map, usable_cores

_STYLE = """body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1200px;padding:0 1em;color:#222}
.scroll{overflow-x:auto;max-width:100%}
table{border-collapse:collapse;font-size:13px;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 6px;text-align:left}
th{background:#f3f3f3;white-space:nowrap}tr.drift td{background:#fff3e0}img{max-width:100%}
.note{color:#666;font-size:13px}dl.glossary dt{font-weight:600}dl.glossary dd{margin:0 0 .4em 1.5em}"""

# field -> (column heading, what it means); the glossary of every report
COLUMN_NAMES = {
    "artist": ("artist", "the artist's name as tagged"),
    "artist_id": ("artist id", "the artist's id in the catalogue (FMA), when known"),
    "n_tracks": ("tracks", "dated tracks behind the score"),
    "n_releases": ("releases", "releases with a release date, each a point in the order"),
    "n_undated_releases": ("undated releases", "releases without a release date: listed apart, not scored"),
    "first_date": ("first", "date of the earliest track"),
    "last_date": ("last", "date of the latest track"),
    "spearman": ("Spearman rho", "rank correlation of release date and distance from the first work (1: every "
                 "release further away than the one before)"),
    "p_value": ("p", "one-sided p-value of rho (exact permutation test up to 8 releases)"),
    "track_spearman": ("rho (tracks)", "the same correlation over tracks, for information"),
    "slope_per_year": ("slope / year", "cosine distance from the first work gained per year (least squares)"),
    "slope_ci_low": ("slope 95% CI low", "bootstrap interval of the slope, tracks resampled within releases"),
    "slope_ci_high": ("slope 95% CI high", "upper end of that interval"),
    "displacement": ("first to last", "cosine distance between the first and the last release centroids"),
    "step": ("typical step", "median cosine distance between consecutive releases"),
    "displacement_ratio": ("first-to-last / step", "about 1 when releases differ at random; grows with a "
                           "steady drift"),
    "relative_displacement": ("first-to-last / collection", "first-to-last distance over the median distance "
                              "between two tracks of the collection"),
    "drifting": ("drifting", "every clause of the rule above holds"),
    "year": ("year", "calendar year"),
    "dist_first": ("from first", "cosine distance from the first year's (or first work's) centroid"),
    "dist_prev": ("from previous", "cosine distance from the previous year's centroid"),
    "release": ("release", "0 = the first work, then releases in date order"),
    "release_dist_prev": ("from previous release", "cosine distance between this release's centroid and the "
                          "previous one's"),
    "release_dist_first": ("release from first", "cosine distance of the release centroid from the first work's"),
    "predicted_label": ("predicted genre", "the model's most probable genre for the track"),
    "x": ("map x", "position on the saved map"), "y": ("map y", "position on the saved map"),
}
# the artists table of evolution.html; artists.csv keeps every field
SUMMARY_FIELDS = ("artist", "n_tracks", "n_releases", "n_undated_releases", "first_date", "last_date", "spearman",
                  "p_value", "slope_per_year", "displacement_ratio", "relative_displacement", "drifting")
FIGURE_MIN_RELEASES = 2  # an artist with this many dated releases gets its own figure and page


def slug(name: str) -> str:
    """A file-name-safe form of an artist name (letters, digits, dashes), never empty."""
    text = re.sub(r"[^\w]+", "-", name, flags=re.UNICODE).strip("-").lower()[:60]
    return text or "artist"


def page_stems(keys: list[ArtistKey]) -> dict[ArtistKey, str]:
    """Each artist's file stem, ``artist-<slug of the name>``, unique among ``keys``: artists whose
    names make one slug (two artists called "John Smith", or "AC/DC" and "AC DC") add their
    artist_id, or their place among them, so no page overwrites another."""
    by_slug: dict[str, list[ArtistKey]] = {}
    for key in keys:
        by_slug.setdefault(slug(key[0]), []).append(key)
    stems, used = {}, {f"artist-{name}" for name, members in by_slug.items() if len(members) == 1}
    for name, members in by_slug.items():
        if len(members) == 1:
            stems[members[0]] = f"artist-{name}"
            continue
        for n, key in enumerate(members, 1):
            stem = f"artist-{name}-{slug(key[1]) if key[1] else n}"
            while stem in used:
                stem += f"-{n}"
            used.add(stem)
            stems[key] = stem
    return stems


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


def heading(column: str) -> str:
    """The readable heading of a field (a ``prob:<label>`` column reads "P(<label>)")."""
    if column.startswith("prob:"):
        return f"P({column[5:]})"
    return COLUMN_NAMES.get(column, (column, ""))[0]


def glossary(columns: list[str]) -> str:
    """A definition list of the headings of ``columns`` that :data:`COLUMN_NAMES` explains."""
    items = "".join(f"<dt>{html.escape(COLUMN_NAMES[c][0])}</dt><dd>{html.escape(COLUMN_NAMES[c][1])}</dd>"
                    for c in dict.fromkeys(columns) if c in COLUMN_NAMES)
    if any(c.startswith("prob:") for c in columns):
        items += "<dt>P(label)</dt><dd>mean genre probability the model gives the label</dd>"
    return f'<details><summary>What the columns mean</summary><dl class="glossary">{items}</dl></details>'


def html_table(frame: pd.DataFrame, highlight: str | None = None, limit: int = 500,
               links: dict[Any, str] | None = None) -> str:
    """An escaped HTML table of ``frame`` (first ``limit`` rows) with readable headings, inside a
    box that scrolls sideways; rows where column ``highlight`` is true stand out; ``links`` maps
    a row's index label to the page its ``artist`` cell links to."""
    head = "".join(f'<th title="{html.escape(str(c))}">{html.escape(heading(str(c)))}</th>' for c in frame.columns)
    body = []
    for index, row in frame.head(limit).iterrows():
        cls = ' class="drift"' if highlight and bool(row.get(highlight)) is True else ""
        cells = []
        for column, value in zip(frame.columns, row.to_numpy()):
            text = _cell(value)
            if links and column == "artist" and index in links:
                text = f'<a href="{html.escape(links[index])}">{text}</a>'
            cells.append(f"<td>{text}</td>")
        body.append(f"<tr{cls}>" + "".join(cells) + "</tr>")
    more = f'<p class="note">{len(frame) - limit} more rows in the CSV.</p>' if len(frame) > limit else ""
    return f"<div class=\"scroll\"><table><tr>{head}</tr>{''.join(body)}</table></div>{more}"


def _img(png: bytes, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode("ascii")}">'


def _page(title: str, body: str) -> str:
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f"<style>{_STYLE}</style></head><body>{body}</body></html>\n")


def _score_block(score: ArtistDrift, map_note: str) -> str:
    fields = "".join(f'<tr><th>{html.escape(heading(k))} <span class="note">{html.escape(k)}</span></th>'
                     f"<td>{_cell(v)}</td></tr>" for k, v in asdict(score).items())  # the CSV's name beside
    return (f"<table>{fields}</table>{glossary(list(asdict(score)))}{_rule_block(score)}"
            f"<p class=\"note\">{html.escape(map_note)}</p>")


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
    """The timeline's shown columns; no predicted genre column when no track has one (a model without
    a genre head)."""
    keep = ["date", "title", "album", "release", "dist_first", "release_dist_prev"]
    if "predicted_label" in timeline.columns and timeline["predicted_label"].notna().any():
        keep.append("predicted_label")
    return timeline[[c for c in keep if c in timeline.columns]]


def _shown(frame: pd.DataFrame, fields: tuple[str, ...]) -> list[str]:
    return [field for field in fields if field in frame.columns]


def _write(path: Path, data: bytes | str) -> Path:
    mode = "wb" if isinstance(data, bytes) else "w"
    with atomic_write(path, mode, **({} if mode == "wb" else {"encoding": "utf-8"})) as handle:
        handle.write(data)
    return path


def _csv(frame: pd.DataFrame) -> str:
    return frame.to_csv(index=False)


def write_artist_report(out: Path, score: ArtistDrift, timeline: pd.DataFrame, tracks: pd.DataFrame,
                        coords: pd.DataFrame | None, undated: pd.DataFrame | None = None,
                        stem: str | None = None) -> list[Path]:
    """``<stem>.html`` (self-contained), ``.png`` and ``.csv`` (the timeline) under ``out``; the stem
    is ``artist-<slug>`` unless given (:func:`page_stems`); ``undated`` (releases without a release
    date) is listed apart in the HTML."""
    stem = stem or f"artist-{slug(score.artist)}"
    png = artist_figure(score, timeline, tracks, coords)
    map_note = "Trajectory drawn on the saved map." if coords is not None else \
        "No map saved in the store, so no trajectory on the map (run 'melodex map' first)."
    body = (f"<h1>{html.escape(score.artist)}: evolution</h1>{_score_block(score, map_note)}"
            f"{_img(png, 'drift plot')}<h2>Tracks in date order</h2>{html_table(_timeline_columns(timeline))}"
            f"{glossary(list(_timeline_columns(timeline).columns))}{_undated_block(undated)}")
    return [_write(out / f"{stem}.html", _page(f"{score.artist}: evolution", body)),
            _write(out / f"{stem}.png", png), _write(out / f"{stem}.csv", _csv(timeline))]


# The store's tracks and map, handed once to each process that draws artist pages (_page_setup).
_SHARED: dict[str, pd.DataFrame | None] = {}


def _page_setup(tracks: pd.DataFrame, coords: pd.DataFrame | None) -> None:
    _SHARED.update(tracks=tracks, coords=coords)


def _artist_page(job: tuple[Path, ArtistDrift, pd.DataFrame, str]) -> list[Path]:
    out, score, timeline, stem = job
    return write_artist_report(out, score, timeline, _SHARED["tracks"], _SHARED["coords"], stem=stem)


def write_collection_report(out: Path, scores: pd.DataFrame, years: pd.DataFrame,
                            timelines: dict[ArtistKey, pd.DataFrame], tracks: pd.DataFrame,
                            coords: pd.DataFrame | None, progress: Any = None,
                            workers: int | None = None) -> list[Path]:
    """``evolution.html``, ``artists.csv``, ``collection_years.csv``, ``collection.png``, and for
    every artist in ``timelines`` with at least :data:`FIGURE_MIN_RELEASES` dated releases an
    ``artist-<slug>.html``/``.png``/``.csv`` (:func:`page_stems`), linked from the artists table;
    drifting artists' figures are also shown in ``evolution.html``. ``timelines`` is keyed by
    :func:`~melodex.analysis.evolution.artist_key` of each score's artist and artist_id.
    ``progress`` (a tqdm bar, say) gets ``update(1)`` after each artist's page.

    The artist pages are drawn on ``workers`` processes (default: every usable core): a page's
    figure takes about half a second, nearly all of it matplotlib laying out text, so 500 pages
    take minutes on one core. The files are the same, byte for byte, as one process writes.
    """

    files = [_write(out / "artists.csv", _csv(scores)), _write(out / "collection_years.csv", _csv(years))]
    collection_png = collection_figure(years, coords, tracks)
    files.append(_write(out / "collection.png", collection_png))
    sections, links = [], {}
    scored = {index: ArtistDrift(**row) for index, row in zip(scores.index, scores.to_dict(orient="records"))}
    keys = {index: artist_key(score.artist, score.artist_id) for index, score in scored.items()}
    paged = {index: key for index, key in keys.items()
             if key in timelines and scored[index].n_releases >= FIGURE_MIN_RELEASES}
    stems = page_stems(list(paged.values()))
    jobs = [(out, scored[index], timelines[key], stems[key]) for index, key in paged.items()]
    pages = ordered_map(_artist_page, jobs, workers=workers or usable_cores(), setup=_page_setup,
                        setup_args=(tracks, coords))
    try:
        for index, (_, score, timeline, _), artist_files in zip(paged, jobs, pages):
            if progress is not None:
                progress.update(1)
            files += artist_files
            links[index] = artist_files[0].name
            if score.drifting:
                sections.append(f"<h3>{html.escape(score.artist)}</h3>"
                                f"{_img(artist_files[1].read_bytes(), score.artist)}"
                                f"{html_table(_timeline_columns(timeline))}")
    finally:
        _SHARED.clear()  # set here too when the pages were drawn in this process
    map_note = "" if coords is not None else "<p class=\"note\">No map saved: year centroids have no map position.</p>"
    drifting = int(scores["drifting"].sum()) if len(scores) else 0
    body = (f"<h1>Evolution of the collection</h1><p>{len(scores)} artist(s) scored; {drifting} drifting; "
            f"{len(links)} with a page of their own (linked by name).</p>"
            f"<h2>Artists, most drifting first</h2>{_rule_block()}"
            f"{html_table(scores[_shown(scores, SUMMARY_FIELDS)], highlight='drifting', links=links)}"
            f'<p class="note">Every field, with bootstrap intervals, is in artists.csv.</p>'
            f"{glossary(_shown(scores, SUMMARY_FIELDS))}"
            f"<h2>The collection by year</h2>{_img(collection_png, 'collection over time')}{map_note}"
            f"{html_table(years)}{glossary(list(years.columns))}"
            f"<h2>Drifting artists</h2>{''.join(sections) or '<p>None.</p>'}")
    files.insert(0, _write(out / "evolution.html", _page("Melodex: evolution", body)))
    return files
