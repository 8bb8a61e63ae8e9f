"""A tiny dataset in FMA's layout for the preprocess and train tests.

``make_fma_fixture(root)`` writes ``root/fma_metadata/tracks.csv`` and ``root/fma_small/NNN/NNNNNN.mp3``
for three genres, with every split represented, plus one file that is not audio
(:data:`BROKEN_KEY`) and one of a single second (:data:`SHORT_KEY`). Returns the audio folder.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np

from melodex.audio.encode import write_audio

GENRES = ("Folk", "Pop", "Rock")
SR = 22050
BROKEN_KEY = "001100"
SHORT_KEY = "000004"
# (track id, genre, split): two training tracks a genre, one validation and one test.
LAYOUT = [
    (2, "Folk", "training"), (3, "Pop", "training"), (SHORT_KEY, "Rock", "training"),
    (5, "Folk", "training"), (6, "Pop", "training"), (7, "Rock", "training"),
    (1010, "Folk", "validation"), (1011, "Pop", "validation"), (1012, "Rock", "validation"),
    (2020, "Folk", "test"), (2021, "Pop", "test"), (2022, "Rock", "test"),
    (BROKEN_KEY, "Pop", "training"),
]


def _clip(genre: str, seconds: float, seed: int) -> np.ndarray:
    """A tone whose pitch and brightness say its genre, with a little noise."""
    rng = np.random.default_rng(seed)
    base = {"Folk": 196.0, "Pop": 523.0, "Rock": 1397.0}[genre]
    t = np.arange(int(seconds * SR)) / SR
    audio = 0.3 * np.sin(2 * np.pi * base * t) + 0.1 * np.sin(2 * np.pi * 3 * base * t)
    return (audio + 0.02 * rng.standard_normal(t.size)).astype(np.float32)


def make_fma_fixture(root: Path, seconds: float = 2.0) -> Path:
    from melodex.datasets.fma import tracks_frame, write_tracks_csv

    audio_dir = root / "fma_small"
    records = {}
    for n, (track_id, genre, split) in enumerate(LAYOUT):
        key = f"{int(track_id):06d}"
        path = audio_dir / key[:3] / f"{key}.mp3"
        if key == BROKEN_KEY:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"ID3 but no audio frames follow" * 20)
        else:
            write_audio(path, _clip(genre, 1.0 if key == SHORT_KEY else seconds, n), SR)
        records[int(track_id)] = {
            ("set", "split"): split, ("set", "subset"): "small", ("track", "genre_top"): genre,
            ("track", "title"): f"Track {key}", ("artist", "name"): f"Artist {n % 4}", ("artist", "id"): n % 4,
            ("album", "title"): f"Album {n % 5}", ("album", "date_released"): "2010-01-01 00:00:00",
        }
    write_tracks_csv(tracks_frame(records), root / "fma_metadata" / "tracks.csv")
    return audio_dir


@contextlib.contextmanager
def interrupted_in_epoch(epoch: int):
    """Inside the block, a supervised run stops with Ctrl-C (KeyboardInterrupt) as epoch ``epoch`` begins."""
    import pytest

    from melodex.training.trainer import Trainer

    real_epoch = Trainer._train_epoch

    def stop(self, number):
        if number == epoch:
            raise KeyboardInterrupt
        return real_epoch(self, number)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Trainer, "_train_epoch", stop)
        yield
