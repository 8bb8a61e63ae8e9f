"""What the demo corpus holds: artists, albums, dates, style mixes, FMA metadata and ground truth.

:func:`plan_corpus` decides every track (no audio); :func:`tracks_table` turns the plan into
FMA's ``tracks.csv`` columns and :func:`ground_truth` into ``demo_truth.json``. The audio is
rendered from the plan by :mod:`melodex.demo.corpus`.

* Five styles (:data:`melodex.demo.synth.STYLES`), three artists each. An artist's albums
  (three tracks each) are spread from a start year in 2005-2009 to 2014-2016; 40 % of its tracks
  hold a trace (10-35 %) of another style, so genre classification is learnable, not trivial.
* One extra artist, :data:`DRIFTER`, releases singles at regular intervals over 2005-2016; the
  weight of its second style rises linearly with the release index, 0 for the first and 1 for
  the last, so its music moves monotonically from one style to the other.
* A track's label (``genre_top``) is its heaviest style. The split is stratified by label,
  70/15/15, with :func:`melodex.datasets.splits.stratified_split`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from melodex.constants import DEMO_TRACKS_PER_ARTIST
from melodex.datasets.fma import tracks_frame
from melodex.datasets.splits import stratified_split
from melodex.demo.synth import STYLES, artist_signature

STYLE_ARTISTS: dict[str, tuple[str, str, str]] = {
    "Synth Pulse": ("Neon Oscillator", "Grid Runner", "Pulse Theory"),
    "Drone Ambient": ("Slow Horizon", "Glass Fog", "Deep Field Hum"),
    "Chip Bounce": ("Pixel Hopper", "Eight-Bit Lantern", "Square Sprite"),
    "Noise Beat": ("Static Breaks", "Dust Engine", "Crackle Unit"),
    "Pluck Folk": ("Wooden Loop", "Cedar Strings", "Hollow Reed"),
}
DRIFTER = ("Drift Machine", "Pluck Folk", "Synth Pulse")  # name, from style, to style
FIRST_YEAR, LAST_YEAR = 2005, 2016
TRACKS_PER_ALBUM = 3
SPLIT_FRACTIONS = (0.7, 0.15, 0.15)
TRACE_PROBABILITY, TRACE_WEIGHT = 0.4, (0.1, 0.35)  # a second style in a stable artist's track
NO_RELEASE_DATE_ARTIST = 111  # its first album lacks album.date_released: track.date_created is used
_WORDS = tuple(
    "Circuit Meadow Signal Harbor Lattice Ember Orbit Willow Static Prism Tide Copper Haze Relay Fable"
    " Quartz".split()
)


def plan_corpus(*, tracks_per_artist: int = DEMO_TRACKS_PER_ARTIST, seed: int = 0) -> list[dict[str, Any]]:
    """Every track of the corpus as a dict (id, artist, album, date, mix, label, split, render seed).

    Deterministic for ``seed``; ids increase from 2 with small random gaps, so the audio spans
    more than one ``<id:06d>[:3]`` folder in a full-size corpus.
    """

    rng = np.random.default_rng([seed, 0])
    artists: list[dict[str, Any]] = []
    for s_i, (style, names) in enumerate(STYLE_ARTISTS.items()):
        for a_i, name in enumerate(names):
            artists.append({"name": name, "id": 100 + 10 * s_i + a_i, "style": style, "drifts": False})
    name, a, b = DRIFTER
    artists.append({"name": name, "id": 199, "style": a, "drifts": True, "from": a, "to": b})
    for artist in artists:
        # a signature in every style: a trace of another style still sounds like this artist
        artist["signature"] = {s: artist_signature(s, rng) for s in STYLE_ARTISTS}

    tracks: list[dict[str, Any]] = []
    for artist in artists:
        tracks.extend(_artist_tracks(artist, tracks_per_artist, rng, first_album_id=1001 + len(tracks)))
    tracks = [tracks[i] for i in rng.permutation(len(tracks))]  # ids do not group by artist
    track_id = 1
    for track in tracks:
        track_id += int(rng.integers(1, 8))
        track["id"] = track_id
        track["key"] = f"{track_id:06d}"
        mix = track["mix"]
        track["label"] = max(sorted(mix), key=lambda s: mix[s])
    splits = stratified_split(((t["key"], t["label"]) for t in tracks), seed=seed, fractions=SPLIT_FRACTIONS)
    for track in tracks:
        track["split"] = splits[track["key"]]
    return tracks


def _artist_tracks(artist: dict, n: int, rng, first_album_id: int) -> list[dict[str, Any]]:
    if artist["drifts"]:  # singles at regular intervals over the whole period
        span = LAST_YEAR - FIRST_YEAR
        dates = sorted(_date(rng, FIRST_YEAR + span * i / max(1, n - 1)) for i in range(n))
        albums = [[i] for i in range(n)]
    else:
        n_albums = max(1, -(-n // TRACKS_PER_ALBUM))
        start = int(rng.integers(FIRST_YEAR, FIRST_YEAR + 5))
        years = np.linspace(start, LAST_YEAR - int(rng.integers(0, 3)), n_albums)
        albums = [list(range(k * n // n_albums, (k + 1) * n // n_albums)) for k in range(n_albums)]
        dates = [""] * n
        for k, members in enumerate(albums):
            day = _date(rng, float(years[k]))
            for i in members:
                dates[i] = day
    out = []
    for k, members in enumerate(albums):
        if artist["drifts"]:
            title = f"{artist['name']} - Single {k + 1}"
        else:
            title = f"{_WORDS[int(rng.integers(len(_WORDS)))]} {('Tapes', 'Sessions', 'Patterns')[k % 3]}"
        no_release_date = artist["id"] == NO_RELEASE_DATE_ARTIST and k == 0
        for number, i in enumerate(members, start=1):
            out.append({
                "artist": artist, "album_id": first_album_id + k, "album": title, "album_size": len(members),
                "number": number, "date": dates[i], "date_released": None if no_release_date else dates[i],
                "mix": _mix(artist, i, n, rng),
                "title": f"Synthetic {_WORDS[int(rng.integers(len(_WORDS)))]} No. {i + 1}",
                "seed": int(rng.integers(2**31)), "loudness": float(rng.uniform(0.07, 0.13)),
                "noise_db": float(rng.uniform(-40.0, -15.0)), "dull": float(rng.uniform(0.0, 0.8)),
            })  # fmt: skip
    return out


def _mix(artist: dict, i: int, n: int, rng) -> dict[str, float]:
    """Style weights of the artist's ``i``-th track (of ``n``, in date order)."""
    if artist["drifts"]:
        w = i / max(1, n - 1)
        return {artist["from"]: round(1.0 - w, 6), artist["to"]: round(w, 6)}
    if rng.random() < TRACE_PROBABILITY:
        other = str(rng.choice([s for s in STYLE_ARTISTS if s != artist["style"]]))
        w = round(float(rng.uniform(*TRACE_WEIGHT)), 6)
        return {artist["style"]: round(1.0 - w, 6), other: w}
    return {artist["style"]: 1.0}


def _date(rng, year: float) -> str:
    """An ISO date inside ``year`` (a fractional year picks the month, a whole one a random month)."""
    y = int(year)
    month = min(12, 1 + int((year - y) * 12)) if year != y else int(rng.integers(1, 13))
    return f"{y:04d}-{month:02d}-{int(rng.integers(1, 29)):02d}"


def tracks_table(tracks: list[dict[str, Any]], *, seconds: float):
    """The plan as a DataFrame with FMA's 52 columns, for :func:`~melodex.datasets.fma.write_tracks_csv`."""

    genre_ids = {style: 1000 + i for i, style in enumerate(STYLE_ARTISTS)}
    records = {}
    for t in tracks:
        artist, created = t["artist"], f"{t['date']} 12:00:00"
        genre = [genre_ids[t["label"]]]
        released = f"{t['date_released']} 00:00:00" if t["date_released"] else None
        row = {
            "album.id": t["album_id"], "album.title": t["album"], "album.tracks": t["album_size"],
            "album.type": "Single Tracks" if artist["drifts"] else "Album", "album.date_released": released,
            "album.date_created": created, "album.tags": ["synthetic"],
            "artist.id": artist["id"], "artist.name": artist["name"], "artist.date_created": created,
            "artist.tags": ["synthetic", "melodex-demo"], "artist.location": "Melodex demo generator",
            "set.split": t["split"], "set.subset": "small",
            "track.title": t["title"], "track.genre_top": t["label"], "track.number": t["number"],
            "track.genres": genre, "track.genres_all": genre, "track.date_created": created,
            "track.duration": int(round(seconds)), "track.bit_rate": t.get("bit_rate"),
            "track.license": "Synthetic audio (CC0)", "track.tags": [], "track.listens": 0,
            "track.favorites": 0, "track.interest": 0, "track.comments": 0,
        }  # fmt: skip
        records[t["id"]] = {tuple(name.split(".")): value for name, value in row.items()}
    return tracks_frame(records)


def ground_truth(tracks: list[dict[str, Any]], **settings: Any) -> dict[str, Any]:
    """``demo_truth.json``: the styles, the artists (which one drifts), each track's style mix."""

    artists = {}
    for t in tracks:
        a = t["artist"]
        own = {a["style"], a.get("to", a["style"])}
        artists[a["name"]] = {k: v for k, v in a.items() if k != "signature"}
        artists[a["name"]]["signature"] = {s: v for s, v in a["signature"].items() if s in own}
    name, a, b = DRIFTER
    styles = {
        s.name: {"description": s.description, "tempo_bpm": list(s.tempo), "root_midi": list(s.root),
                 "scale": list(s.scale)}
        for s in STYLES.values()
    }  # fmt: skip
    rule = f"weight of {b} = release index / (releases - 1): 0 at the first release, 1 at the last"
    return {
        "generator": "melodex.demo.corpus", **settings, "styles": styles, "artists": artists,
        "drifting_artist": {"name": name, "from": a, "to": b, "rule": rule},
        "tracks": {
            t["key"]: {"artist": t["artist"]["name"], "label": t["label"], "mix": t["mix"], "date": t["date"],
                       "split": t["split"], "album": t["album"]}
            for t in sorted(tracks, key=lambda t: t["id"])
        },
    }  # fmt: skip
