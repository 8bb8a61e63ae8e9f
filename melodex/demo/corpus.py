"""Render the synthetic demo corpus to disk in FMA's layout (``melodex make-demo`` runs it).

:func:`write_demo_corpus` writes ``fma_metadata/tracks.csv`` (FMA's three header lines and
52 columns), the ``fma_small/{id[:3]}/{id}.mp3`` clips and ``demo_truth.json`` (the ground
truth of styles, artists and each track's style mix) from the plan of :mod:`melodex.demo.plan`
and the instruments of :mod:`melodex.demo.synth`. The corpus is a pure function of the seed,
whatever the number of worker processes, and a folder that already holds a real FMA is never
overwritten. A corpus already there with the same settings is reused: only missing clips are
rendered (an interrupted run resumes), and a complete one is left untouched, so file dates and
the caches keyed by them stay valid.
"""

from __future__ import annotations

import contextlib
import json
import logging
import multiprocessing
import os
import re
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from melodex.audio.encode import encode_with_ffmpeg
from melodex.constants import DEMO_SECONDS, DEMO_TRACKS_PER_ARTIST
from melodex.datasets.fma import audio_path, write_tracks_csv
from melodex.demo.plan import ground_truth, plan_corpus, tracks_table
from melodex.demo.synth import render_track, track_params
from melodex.errors import OutputError
from melodex.util.atomic import atomic_write
from melodex.util.workers import usable_cores

log = logging.getLogger(__name__)

SAMPLE_RATE = 22050  # Hz; mono
BIT_RATE = 96000  # bit/s, constant, of the demo's mp3s


def write_demo_corpus(
    out_dir: str | Path,
    *,
    tracks_per_artist: int = DEMO_TRACKS_PER_ARTIST,
    seconds: float = DEMO_SECONDS,
    seed: int = 0,
    workers: int | None = None,
    progress: bool | None = None,
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
        Processes rendering and encoding audio; default: the usable cores. 1 runs in-process.
    progress : bool, optional
        Show a progress bar on stderr; default: when stderr is a terminal.
    """

    out = Path(out_dir)
    if (out / "fma_metadata" / "tracks.csv").exists() and not (out / "demo_truth.json").exists():
        raise OutputError(
            f"{out}: holds an fma_metadata/tracks.csv that is not a demo corpus; not overwriting it"
        )
    tracks = plan_corpus(tracks_per_artist=tracks_per_artist, seed=seed)
    audio_dir = out / "fma_small"
    jobs = [
        (str(audio_path(audio_dir, t["id"])), t["mix"], _params(t), seconds, t["seed"],
         {"loudness": t["loudness"], "noise_db": t["noise_db"], "dull": t["dull"]})
        for t in tracks
    ]  # fmt: skip
    settings = {"seed": seed, "seconds": seconds, "sample_rate": SAMPLE_RATE, "bit_rate": BIT_RATE,
                "tracks_per_artist": tracks_per_artist}
    done = _reusable(out, audio_dir, settings)
    todo = [job for job in jobs if job[0] not in done]
    if not todo and (out / "demo_truth.json").is_file() and (out / "fma_metadata" / "tracks.csv").is_file():
        log.info("reusing the demo corpus in %s (same settings, every clip there)", out)
        return out
    rendered = dict(zip((job[0] for job in todo), _render_all(todo, workers, progress), strict=True))
    sizes = [rendered[job[0]] if job[0] in rendered else os.path.getsize(job[0]) for job in jobs]
    for track, size in zip(tracks, sizes, strict=True):
        track["bit_rate"] = int(round(size * 8 / seconds))  # the mp3's mean bit rate, as FMA reports it
    _remove_stale(audio_dir, {Path(job[0]).name for job in jobs})
    write_tracks_csv(tracks_table(tracks, seconds=seconds), out / "fma_metadata" / "tracks.csv")
    truth = ground_truth(tracks, seed=seed, seconds=seconds, sample_rate=SAMPLE_RATE,
                         tracks_per_artist=tracks_per_artist)  # fmt: skip
    with atomic_write(out / "demo_truth.json", "w", encoding="utf-8") as handle:
        json.dump(truth, handle, indent=1, sort_keys=True)
    log.debug("wrote %d demo tracks to %s", len(tracks), out)
    return out


def _reusable(out: Path, audio_dir: Path, settings: dict[str, Any]) -> set[str]:
    """The clips already rendered with ``settings`` (their paths), so a rerun renders only the rest.

    ``.demo_settings.json`` records the settings the clips were rendered with. When it is missing
    (a corpus from before it existed, reused when its ``demo_truth.json`` states the same
    settings) or differs, the old clips are removed before it is rewritten, so every clip present
    was rendered with the recorded settings, even after an interrupted run."""

    marker = out / ".demo_settings.json"
    try:
        recorded = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        recorded = None
    if recorded is None and (out / "demo_truth.json").is_file():
        with contextlib.suppress(OSError, ValueError):
            truth = json.loads((out / "demo_truth.json").read_text(encoding="utf-8"))
            recorded = {key: truth.get(key) for key in settings if key != "bit_rate"} | {"bit_rate": BIT_RATE}
    if recorded == settings:
        return {str(p) for p in audio_dir.glob("*/*.mp3")}
    _remove_stale(audio_dir, set())
    with atomic_write(marker, "w", encoding="utf-8") as handle:
        json.dump(settings, handle, sort_keys=True)
    return set()


def _params(track: dict[str, Any]) -> dict[str, dict]:
    rng = np.random.default_rng([track["seed"], 1])
    signature = track["artist"]["signature"]
    return {style: track_params(style, signature[style], rng) for style in sorted(track["mix"])}


def _render_one(job: tuple) -> int:
    """Render and encode one clip (runs in a worker process); return the mp3's size in bytes."""

    path, mix, params, seconds, seed, post = job
    audio = render_track(
        mix, params, seconds=seconds, sr=SAMPLE_RATE, rng=np.random.default_rng([seed, 2]), **post
    )
    write_mp3(path, audio, SAMPLE_RATE)
    return os.path.getsize(path)


def _render_all(jobs: list[tuple], workers: int | None, progress: bool | None) -> list[int]:
    """Render every job, in-process or in a pool of ``workers`` processes; the mp3 sizes in job order."""

    workers = max(1, min(workers or usable_cores(), len(jobs)))
    disable = None if progress is None else not progress
    bar = tqdm(total=len(jobs), desc="demo audio", unit="track", disable=disable, leave=False)
    sizes: list[int] = []
    try:
        if workers == 1:
            for job in jobs:
                sizes.append(_render_one(job))
                bar.update()
            return sizes
        # spawn, not fork: the parent may hold torch's threads, and fork would copy their locks.
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            for size in pool.map(_render_one, jobs, chunksize=4):
                sizes.append(size)
                bar.update()
    finally:
        bar.close()
    return sizes


def write_mp3(path: str | Path, audio, sr: int) -> Path:
    """Encode mono float32 ``audio`` to an mp3 at ``path`` atomically, with LAME's fastest setting.

    LAME's ``-q 9`` through PyAV, constant :data:`BIT_RATE`. libsndfile's writer
    (:func:`melodex.audio.encode.write_audio`) runs LAME at its default quality and costs 1.3-1.6x the
    CPU per clip (``benchmarks/bench_demo_corpus.py``); encoding is most of the corpus's time, and
    with it a full corpus needed ~90 CPU-seconds, at the edge of the ~45-s budget on two cores.
    """

    with atomic_write(path, "wb") as handle:
        encode_with_ffmpeg(handle, audio, sr, container_format="mp3", codec="libmp3lame", bit_rate=BIT_RATE,
                           options={"compression_level": "9"})
    return Path(path)


def _remove_stale(audio_dir: Path, keep: set[str]) -> None:
    """Remove mp3s an earlier demo run left (other seed or size), so the folder matches tracks.csv."""

    pattern = re.compile(r"^\d{6}\.mp3$")
    for path in audio_dir.glob("*/*.mp3"):
        if pattern.match(path.name) and path.name not in keep:
            path.unlink()
