"""Write the synthetic demo corpus in FMA's layout, so every Melodex command runs without a download.

Layout written under ``--out`` (default ``demo_data``)::

    demo_data/fma_metadata/tracks.csv    # FMA's three header lines and 52 columns
    demo_data/fma_small/000/000002.mp3   # 22050 Hz mono mp3 clips, 30 s by default
    demo_data/demo_truth.json            # the ground truth: styles, artists, per-track style mix

The music is clearly synthetic: five made-up styles (:mod:`melodex.datasets.synth`), three
artists per style whose albums are spread over 2005-2016, and one extra artist, "Drift Machine",
whose music moves on purpose from one style to another: its tracks are singles released at
regular intervals and the weight of the second style rises linearly with the date (0 for the
first release, 1 for the last). The label (``genre_top``) of a mixed track is its heavier style.
The split is stratified by label, about 70/15/15, and the whole corpus is a pure function of
the seed: same seed, same ``tracks.csv``, same mp3 bytes, whatever the number of workers.

Run ``melodex make-demo --out demo_data`` (or ``python -m melodex make-demo``); then
``--data_dir demo_data/fma_small`` works wherever FMA-small does.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

STYLE_ARTISTS: dict[str, tuple[str, str, str]] = {
    "Synth Pulse": ("Neon Oscillator", "Grid Runner", "Pulse Theory"),
    "Drone Ambient": ("Slow Horizon", "Glass Fog", "Deep Field Hum"),
    "Chip Bounce": ("Pixel Hopper", "Eight-Bit Lantern", "Square Sprite"),
    "Noise Beat": ("Static Breaks", "Dust Engine", "Crackle Unit"),
    "Pluck Folk": ("Wooden Loop", "Cedar Strings", "Hollow Reed"),
}
DRIFTER = ("Drift Machine", "Pluck Folk", "Synth Pulse")  # name, from style, to style
FIRST_YEAR, LAST_YEAR = 2005, 2016
TRACKS_PER_ALBUM = 6
SPLIT_FRACTIONS = (0.7, 0.15, 0.15)
CONTAMINATION = (0.4, 0.15, 0.4)  # probability that a stable artist's track holds a second style, its weight range
SAMPLE_RATE = 22050
_WORDS = ("Circuit", "Meadow", "Signal", "Harbor", "Lattice", "Ember", "Orbit", "Willow", "Static", "Prism",
          "Tide", "Copper", "Haze", "Relay", "Fable", "Quartz")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", "--out_dir", dest="out", default="demo_data",
                        help="folder to write into (default: demo_data)")
    parser.add_argument("--tracks-per-artist", "--tracks_per_artist", dest="tracks_per_artist", type=int, default=18,
                        help="tracks per artist; 16 artists (default 18: 288 tracks)")
    parser.add_argument("--seconds", type=float, default=30.0, help="clip length in seconds (default 30)")
    parser.add_argument("--seed", type=int, default=0, help="random seed; the same seed writes the same corpus")
    parser.add_argument("--workers", type=int, default=None, help="processes (default: the number of CPU cores)")


def run(args: argparse.Namespace) -> int:
    from ..errors import DatasetError

    if args.tracks_per_artist < 1:
        raise DatasetError("--tracks-per-artist must be at least 1")
    if not 1.0 <= args.seconds <= 600.0:
        raise DatasetError("--seconds must be between 1 and 600")
    start = time.perf_counter()
    out = write_demo_corpus(args.out, tracks_per_artist=args.tracks_per_artist, seconds=args.seconds,
                            seed=args.seed, workers=args.workers)
    truth = json.loads((out / "demo_truth.json").read_text())
    print(f"wrote {len(truth['tracks'])} tracks ({len(truth['styles'])} styles, {len(truth['artists'])} artists) "
          f"to {out} in {time.perf_counter() - start:.1f} s")
    print(f"train with: melodex train --data_dir {out / 'fma_small'}")
    return 0


def plan_corpus(*, tracks_per_artist: int = 18, seed: int = 0) -> list[dict[str, Any]]:
    """Every track of the corpus as a dict (id, artist, album, date, style mix, render seed), no audio.

    Deterministic for ``seed``; ids increase with small random gaps from 2, so the audio spans
    more than one ``<id:06d>[:3]`` folder.
    """
    import numpy as np

    from .synth import artist_signature

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
    album_id = 1000
    for artist in artists:
        n = tracks_per_artist
        if artist["drifts"]:  # singles at regular intervals over the whole period
            dates = [_date(rng, FIRST_YEAR + (LAST_YEAR - FIRST_YEAR) * i / max(1, n - 1)) for i in range(n)]
            dates.sort()
            albums = [[i] for i in range(n)]
        else:
            start = int(rng.integers(FIRST_YEAR, FIRST_YEAR + 5))
            n_albums = max(1, -(-n // TRACKS_PER_ALBUM))
            years = np.linspace(start, LAST_YEAR - int(rng.integers(0, 3)), n_albums)
            albums = [list(range(k * n // n_albums, (k + 1) * n // n_albums)) for k in range(n_albums)]
            dates = [None] * n
            for k, members in enumerate(albums):
                day = _date(rng, float(years[k]))
                for i in members:
                    dates[i] = day
        for k, members in enumerate(albums):
            album_id += 1
            album_title = (f"{artist['name']} - Single {k + 1}" if artist["drifts"]
                           else f"{_WORDS[int(rng.integers(len(_WORDS)))]} {('Tapes', 'Sessions', 'Patterns')[k % 3]}")
            no_release_date = artist["id"] == 111 and k == 0  # exercises the fallback
            for number, i in enumerate(members, start=1):
                if artist["drifts"]:
                    w = i / max(1, n - 1)
                    mix = {artist["from"]: round(1.0 - w, 6), artist["to"]: round(w, 6)}
                elif rng.random() < CONTAMINATION[0]:  # a trace of another style: learnable, not trivial
                    other = str(rng.choice([s for s in STYLE_ARTISTS if s != artist["style"]]))
                    w = round(float(rng.uniform(*CONTAMINATION[1:])), 6)
                    mix = {artist["style"]: round(1.0 - w, 6), other: w}
                else:
                    mix = {artist["style"]: 1.0}
                tracks.append({
                    "artist": artist, "album_id": album_id, "album": album_title, "album_size": len(members),
                    "number": number, "date": dates[i], "date_released": None if no_release_date else dates[i],
                    "mix": mix, "title": f"Synthetic {_WORDS[int(rng.integers(len(_WORDS)))]} No. {i + 1}",
                    "seed": int(rng.integers(2**31)), "loudness": float(rng.uniform(0.07, 0.13)),
                    "noise_db": float(rng.uniform(-40.0, -15.0)), "dull": float(rng.uniform(0.0, 0.8)),
                })
    # interleave artists so that ids do not group by artist, then number them
    order = rng.permutation(len(tracks))
    tracks = [tracks[i] for i in order]
    track_id = 1
    for track in tracks:
        track_id += int(rng.integers(1, 8))
        track["id"] = track_id
        mix = track["mix"]
        track["label"] = max(sorted(mix), key=lambda s: mix[s])
    return tracks


def _date(rng, year: float) -> str:
    """An ISO date inside ``year`` (a fractional year picks the month)."""
    y = int(year)
    month = min(12, 1 + int((year - y) * 12)) if year != y else int(rng.integers(1, 13))
    return f"{y:04d}-{month:02d}-{int(rng.integers(1, 29)):02d}"


def write_demo_corpus(
    out_dir: str | Path,
    *,
    tracks_per_artist: int = 18,
    seconds: float = 30.0,
    seed: int = 0,
    workers: int | None = None,
) -> Path:
    """Write the demo corpus (see the module docstring) and return ``out_dir``.

    Parameters
    ----------
    out_dir : str or Path
        Created if needed. A folder that already holds a ``fma_metadata/tracks.csv`` without a
        ``demo_truth.json`` (a real FMA download) is refused, never overwritten.
    tracks_per_artist : int
        Tracks per artist; there are 16 artists (5 styles x 3, plus the drifting one).
    seconds : float
        Length of each clip in seconds.
    seed : int
        Fixes everything: metadata, splits and audio.
    workers : int, optional
        Processes rendering and encoding audio; default ``os.cpu_count()``. 1 runs in-process.
    """
    from ..errors import OutputError
    from ..fileio import atomic_write
    from .fma import audio_path
    from .splits import stratified_split

    out = Path(out_dir)
    if (out / "fma_metadata" / "tracks.csv").exists() and not (out / "demo_truth.json").exists():
        raise OutputError(f"{out}: holds an fma_metadata/tracks.csv that is not a demo corpus; refusing to overwrite")
    tracks = plan_corpus(tracks_per_artist=tracks_per_artist, seed=seed)
    splits = stratified_split(((f"{t['id']:06d}", t["label"]) for t in tracks), seed=seed, fractions=SPLIT_FRACTIONS)
    audio_dir = out / "fma_small"
    jobs = [(str(audio_path(audio_dir, t["id"])), t["mix"], _params(t), seconds, t["seed"],
             {"loudness": t["loudness"], "noise_db": t["noise_db"], "dull": t["dull"]}) for t in tracks]
    _render_all(jobs, workers)
    _remove_stale(audio_dir, {Path(j[0]).name for j in jobs})
    from .fma import write_tracks_csv

    write_tracks_csv(_frame(tracks, splits, seconds), out / "fma_metadata" / "tracks.csv")
    truth = _truth(tracks, splits, seconds, seed, tracks_per_artist)
    with atomic_write(out / "demo_truth.json", "w", encoding="utf-8") as handle:
        json.dump(truth, handle, indent=1, sort_keys=True)
    log.info("wrote %d demo tracks to %s", len(tracks), out)
    return out


def _params(track: dict[str, Any]) -> dict[str, dict]:
    import numpy as np

    from .synth import track_params

    rng = np.random.default_rng([track["seed"], 1])
    signature = track["artist"]["signature"]
    return {style: track_params(style, signature[style], rng) for style in sorted(track["mix"])}


def _render_one(job: tuple) -> str:
    """Render and encode one clip (runs in a worker process)."""
    import numpy as np

    from .synth import render_track

    path, mix, params, seconds, seed, post = job
    audio = render_track(mix, params, seconds=seconds, sr=SAMPLE_RATE, rng=np.random.default_rng([seed, 2]), **post)
    write_mp3(path, audio, SAMPLE_RATE)
    return path


def _render_all(jobs: list[tuple], workers: int | None) -> None:
    from tqdm import tqdm

    workers = max(1, min(workers or os.cpu_count() or 1, len(jobs)))
    bar = tqdm(total=len(jobs), desc="demo audio", unit="track", disable=None, leave=False)
    try:
        if workers == 1:
            for job in jobs:
                _render_one(job)
                bar.update()
            return
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        # spawn, not fork: the parent may hold torch's threads, and fork would copy their locks.
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            for _ in pool.map(_render_one, jobs, chunksize=4):
                bar.update()
    finally:
        bar.close()


def write_mp3(path: str | Path, audio, sr: int) -> Path:
    """Encode mono float32 ``audio`` to an mp3 at ``path`` atomically, with LAME's fastest setting.

    libsndfile's mp3 writer (:func:`melodex.encode.write_audio`) runs LAME at its default
    quality, about twice as slow; the demo's ~45-s budget on two cores needs ``-q 9``.
    """
    import av
    import numpy as np

    from ..fileio import atomic_write

    planar = np.ascontiguousarray(np.asarray(audio, dtype=np.float32)[None, :])
    with atomic_write(path, "wb") as handle:
        with av.open(handle, "w", format="mp3") as container:
            stream = container.add_stream("libmp3lame", rate=sr, layout="mono")
            stream.bit_rate = 64000
            stream.codec_context.options = {"compression_level": "9"}
            frame = av.AudioFrame.from_ndarray(planar, format="fltp", layout="mono")
            frame.sample_rate = sr
            for packet in stream.encode(frame):
                container.mux(packet)
            for packet in stream.encode(None):
                container.mux(packet)
    return Path(path)


def _remove_stale(audio_dir: Path, keep: set[str]) -> None:
    """Remove mp3s an earlier demo run left (other seed or size), so the folder matches tracks.csv."""
    import re

    pattern = re.compile(r"^\d{6}\.mp3$")
    for path in audio_dir.glob("*/*.mp3"):
        if pattern.match(path.name) and path.name not in keep:
            path.unlink()


def _frame(tracks: list[dict[str, Any]], splits: dict[str, str], seconds: float):
    from .fma import tracks_frame

    genre_ids = {style: 1000 + i for i, style in enumerate(STYLE_ARTISTS)}
    records = {}
    for t in tracks:
        artist = t["artist"]
        created = f"{t['date']} 12:00:00"
        records[t["id"]] = {
            ("album", "id"): t["album_id"], ("album", "title"): t["album"], ("album", "tracks"): t["album_size"],
            ("album", "type"): "Single Tracks" if artist["drifts"] else "Album",
            ("album", "date_released"): f"{t['date_released']} 00:00:00" if t["date_released"] else None,
            ("album", "date_created"): created, ("album", "tags"): ["synthetic"],
            ("artist", "id"): artist["id"], ("artist", "name"): artist["name"], ("artist", "date_created"): created,
            ("artist", "tags"): ["synthetic", "melodex-demo"], ("artist", "location"): "Melodex demo generator",
            ("set", "split"): splits[f"{t['id']:06d}"], ("set", "subset"): "small",
            ("track", "title"): t["title"], ("track", "genre_top"): t["label"], ("track", "number"): t["number"],
            ("track", "genres"): [genre_ids[t["label"]]], ("track", "genres_all"): [genre_ids[t["label"]]],
            ("track", "date_created"): created, ("track", "duration"): int(round(seconds)),
            ("track", "bit_rate"): 64000, ("track", "license"): "Synthetic audio (CC0)", ("track", "tags"): [],
            ("track", "listens"): 0, ("track", "favorites"): 0, ("track", "interest"): 0, ("track", "comments"): 0,
        }
    return tracks_frame(records)


def _truth(tracks, splits, seconds, seed, tracks_per_artist) -> dict[str, Any]:
    from .synth import STYLES

    artists = {}
    for t in tracks:
        a = t["artist"]
        own = {a["style"], a.get("to", a["style"])}
        artists[a["name"]] = {k: v for k, v in a.items() if k != "signature"} | {
            "signature": {s: v for s, v in a["signature"].items() if s in own}}
    name, a, b = DRIFTER
    return {
        "generator": "melodex.datasets.demo", "seed": seed, "seconds": seconds, "sample_rate": SAMPLE_RATE,
        "tracks_per_artist": tracks_per_artist,
        "styles": {s.name: {"description": s.description, "tempo_bpm": list(s.tempo), "root_midi": list(s.root),
                            "scale": list(s.scale)} for s in STYLES.values()},
        "artists": artists,
        "drifting_artist": {"name": name, "from": a, "to": b,
                            "rule": f"weight of {b} = (release index) / (releases - 1), rising with the date"},
        "tracks": {f"{t['id']:06d}": {"artist": t["artist"]["name"], "label": t["label"], "mix": t["mix"],
                                      "date": t["date"], "split": splits[f"{t['id']:06d}"], "album": t["album"]}
                   for t in sorted(tracks, key=lambda t: t["id"])},
    }
