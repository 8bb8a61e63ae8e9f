"""A tiny FMA in FMA's exact layout, written by melodex's own writer, for dataset tests.

``write_fma_fixture(root)`` writes ``root/fma_metadata/tracks.csv`` and short mp3s under
``root/fma_small/``; ``FIXTURE`` says what each track is for.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

SR = 22050

# track id -> what the test expects of it
FIXTURE = {
    2: "Rock, training, album date",
    3: "Hip-Hop, validation, no album date: falls back to track.date_created",
    5: "Rock, test",
    10: "Folk, training",
    11: "Folk, test",
    12: "Hip-Hop, training",
    20: "no genre_top: skipped and counted",
    30: "Pop, medium subset: not in fma_small",
    40: "Rock, mp3 missing on disk: skipped with a warning",
    99134: "Rock, FMA's known-empty file: skipped with a warning",
    98565: "Folk, 1-second clip: kept with a warning",
}


def _row(
    genre,
    split,
    subset="small",
    *,
    artist="Artist A",
    artist_id=7,
    album="Album One",
    released="2009-01-05 00:00:00",
    created="2008-11-26 01:48:12",
    title="Song",
):
    return {
        ("track", "genre_top"): genre,
        ("set", "split"): split,
        ("set", "subset"): subset,
        ("artist", "name"): artist,
        ("artist", "id"): artist_id,
        ("album", "title"): album,
        ("album", "date_released"): released,
        ("track", "date_created"): created,
        ("track", "title"): title,
        ("track", "genres"): [12],
        ("track", "genres_all"): [12, 1],
        ("track", "tags"): ["demo", "it's"],
        ("album", "tags"): [],
        ("artist", "tags"): ["x"],
        ("album", "type"): "Album",
        ("artist", "active_year_begin"): "1990-01-01",
    }


def fixture_records() -> dict[int, dict]:
    return {
        2: _row("Rock", "training", title="First"),
        3: _row(
            "Hip-Hop",
            "validation",
            artist="Beat Person",
            artist_id=8,
            album="Loops",
            released=None,
            created="2011-03-04 10:00:00",
            title="Second",
        ),
        5: _row("Rock", "test"),
        10: _row("Folk", "training", artist="Fiddler", artist_id=9),
        11: _row("Folk", "test", artist="Fiddler", artist_id=9),
        12: _row("Hip-Hop", "training", artist="Beat Person", artist_id=8),
        20: _row(None, "training"),
        30: _row("Pop", "training", subset="medium"),
        40: _row("Rock", "training"),
        99134: _row("Rock", "training"),
        98565: _row("Folk", "training", artist="Fiddler", artist_id=9),
    }


def clip(seconds: float, freq: float = 330.0) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def write_fma_fixture(
    root: Path, records: dict[int, dict] | None = None, audio_folder: str = "fma_small"
) -> Path:
    """Write tracks.csv and clips under ``root``; return the audio folder."""
    from melodex.audio.encode import write_audio
    from melodex.datasets.fma import audio_path, tracks_frame, write_tracks_csv

    records = fixture_records() if records is None else records
    write_tracks_csv(tracks_frame(records), root / "fma_metadata" / "tracks.csv")
    audio_dir = root / audio_folder
    for tid in records:
        path = audio_path(audio_dir, tid)
        if tid == 40:
            continue
        if tid == 99134:  # present on disk, but holds nothing (as in the real FMA-small)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"")
            continue
        write_audio(path, clip(1.0 if tid == 98565 else 2.0, 200.0 + tid), SR)
    return audio_dir
