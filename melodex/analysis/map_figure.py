"""The static map figure for papers: a PNG, SVG or PDF of a store's map, drawn with matplotlib.

Colours, legend limits and the "unknown"/"other" greys come from :mod:`melodex.analysis.map_page`,
so a label has the same colour on the page and in the figure.
"""

from __future__ import annotations

import collections
import io
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure  # no pyplot: the caller's backend and figures stay untouched

from melodex.analysis.map_page import (
    MAX_LEGEND,
    STATIC_FORMATS,
    category_colors,
    choose_color_by,
    color_values,
    map_frame,
    track_years,
)
from melodex.analysis.palette import OTHER_COLOR, UNKNOWN_COLOR
from melodex.errors import OutputError
from melodex.util.atomic import atomic_write


def write_static_map(store_or_frames: Any, path: str | Path, *, color_by: str | None = None,
                     title: str | None = None, dpi: int = 200) -> Path:
    """Write the map as a static figure (PNG, SVG or PDF by extension; Agg) with a legend, no axes.

    Categorical colourings name the ``MAX_LEGEND`` largest categories and draw the rest as
    "other"; unknown values are grey. ``color_by="year"`` uses a colour bar; None (and
    "predicted" without predicted genres) colours as :func:`~melodex.analysis.map_page.choose_color_by`
    picks. Returns ``path``.
    """

    path = Path(path)
    fmt = STATIC_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise OutputError(f"{path}: a static map must end in {', '.join(STATIC_FORMATS)}")
    frame = map_frame(store_or_frames)
    color_by = choose_color_by(frame, color_by)
    n = len(frame)
    size = 2 if n > 20000 else 6 if n > 2000 else 14
    fig = Figure(figsize=(8, 7))
    ax = fig.subplots()
    if color_by == "year":
        _draw_years(ax, fig, frame, size)
    else:
        colors = category_colors(frame)[color_by if color_by in ("artist", "folder") else "label"]
        _draw_categories(ax, frame, color_values(frame, color_by), size, colors)
    ax.set_axis_off()
    ax.set_aspect("equal", adjustable="datalim")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format=fmt, dpi=dpi, bbox_inches="tight")
    with atomic_write(path, "wb") as handle:
        handle.write(buffer.getvalue())
    return path


def _draw_categories(ax, frame: pd.DataFrame, values: list[str | None], size: float,
                     colors: dict[str, str]) -> None:
    counts = collections.Counter(v for v in values if v is not None)
    named = [name for name, _ in counts.most_common(MAX_LEGEND)]
    labels = np.array([v if v in named else ("unknown" if v is None else "other") for v in values],
                      dtype=object)
    x, y = frame["x"].to_numpy(), frame["y"].to_numpy()
    for name in [*named, "other", "unknown"]:
        mask = labels == name
        if not mask.any():
            continue
        color = {"other": OTHER_COLOR, "unknown": UNKNOWN_COLOR}.get(name) or colors.get(name, OTHER_COLOR)
        ax.scatter(x[mask], y[mask], s=size, color=color, label=f"{name} ({int(mask.sum())})",
                   linewidths=0, alpha=0.85, rasterized=True)
    ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False, markerscale=max(1.0, 12 / size))


def _draw_years(ax, fig, frame: pd.DataFrame, size: float) -> None:
    years = np.array([np.nan if v is None else v for v in track_years(frame)], dtype=float)
    x, y = frame["x"].to_numpy(), frame["y"].to_numpy()
    unknown = np.isnan(years)
    if unknown.any():
        ax.scatter(x[unknown], y[unknown], s=size, color=UNKNOWN_COLOR, linewidths=0, rasterized=True,
                   label=f"year unknown ({int(unknown.sum())})")
        ax.legend(loc="lower left", frameon=False)
    if (~unknown).any():
        points = ax.scatter(x[~unknown], y[~unknown], s=size, c=years[~unknown], cmap="viridis", linewidths=0,
                            rasterized=True)
        fig.colorbar(points, ax=ax, label="year", shrink=0.7)
