"""One colour per label everywhere: the map page, its static figure and the evolution figures.

A label's colour depends only on the label set, never on how many tracks carry it or on which
figure draws it: the model's own labels (a store's ``prob:<label>`` columns) take the palette in
sorted order, and any other names (tag genres the model does not know, artists) follow them, also
sorted. So "Drone Ambient" is the same colour on the map, in its PNG and in every evolution plot
of the same store.
"""

from __future__ import annotations

from collections.abc import Iterable

# tab10, then lighter tones: 20 colours told apart easily
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf",
           "#bcbd22", "#393b79", "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94",
           "#f7b6d2", "#9edae5", "#dbdb8d", "#7f7f7f")
UNKNOWN_COLOR = "#c8c8c8"  # a value that is missing
OTHER_COLOR = "#8a8a8a"  # the labels past the palette, drawn together as "other"


def _sorted(names: Iterable[str]) -> list[str]:
    return sorted(set(names), key=lambda name: (name.casefold(), name))


def label_colors(labels: Iterable[str], others: Iterable[str] = ()) -> dict[str, str]:
    """A colour for each of ``labels`` and then ``others`` (names not in ``labels``).

    ``labels`` (the model's labels) take :data:`PALETTE` in sorted order, the remaining
    ``others`` follow in sorted order; names past the palette's 20 colours get
    :data:`OTHER_COLOR`. The same sets always give the same colours.
    """

    first = _sorted(labels)
    known = set(first)
    ordered = first + [name for name in _sorted(others) if name not in known]
    return {name: PALETTE[k] if k < len(PALETTE) else OTHER_COLOR for k, name in enumerate(ordered)}


def model_labels(columns: Iterable[str], prefix: str = "prob:") -> list[str]:
    """The model's labels named by a store frame's ``prob:<label>`` columns."""

    return [c[len(prefix):] for c in columns if c.startswith(prefix)]
