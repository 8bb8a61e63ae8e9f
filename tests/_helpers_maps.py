"""Synthetic libraries for the map tests: clustered 512-d embeddings with known styles."""

from __future__ import annotations

from pathlib import Path

import numpy as np

STYLES = ("Rock", "Folk", "Jazz", "Electronic", "Hip-Hop")
HOSTILE_TITLE = '</script><script>alert("x")</script> & <b>bold</b>'


def clustered_embeddings(n_styles: int = 5, per_style: int = 60, dim: int = 512, seed: int = 0):
    """``(embeddings [shape=(n_styles*per_style, dim)] float32, style index per row)``.

    Each style is a 2-D sheet (a random linear image of a square) around its own centre, with a
    little noise, so neighbourhoods exist within styles as well as between them.
    """
    rng = np.random.default_rng(seed)
    rows, styles = [], []
    for s in range(n_styles):
        centre = rng.standard_normal(dim) * 3.0
        basis = rng.standard_normal((2, dim))
        latent = rng.uniform(-1.0, 1.0, size=(per_style, 2))
        rows.append(centre + latent @ basis + 0.05 * rng.standard_normal((per_style, dim)))
        styles += [s] * per_style
    return np.concatenate(rows).astype(np.float32), np.asarray(styles)


def make_library(root: Path, *, n_styles: int = 5, per_style: int = 60, seed: int = 0,
                 audio_dir: Path | None = None, hostile: bool = False, start: int = 0, hold_out: int = 0):
    """A :class:`LibraryStore` at ``root`` holding a synthetic library.

    Returns ``(store, styles, held_out, held_styles)``: the style index of each stored track and
    ``hold_out`` further tracks per style (embeddings [shape=(n_styles*hold_out, 512)]) that are
    drawn like the others but not stored.

    Artists: three per style; dates spread over 1990-2020 with every 7th missing; every 11th
    track has no genre tag. With ``audio_dir`` each track gets a short generated WAV file.
    ``hostile`` makes the first title (and first artist) HTML/JS.
    """
    from melodex.audio.encode import write_audio
    from melodex.library.store import LibraryStore, TrackRecord

    emb, styles = clustered_embeddings(n_styles, per_style + hold_out, seed=seed)
    held = np.arange(len(emb)) % (per_style + hold_out) >= per_style
    held_out, held_styles = emb[held], styles[held]
    emb, styles = emb[~held], styles[~held]
    records = []
    for i, (e, s) in enumerate(zip(emb, styles)):
        k = start + i
        track_id = f"t{k:05d}"
        year = 1990 + (k * 7) % 31
        date = None if k % 7 == 3 else (f"{year}" if k % 2 else f"{year}-{1 + k % 12:02d}-15")
        if audio_dir is not None:
            t = np.arange(int(0.4 * 8000)) / 8000
            wave = 0.2 * np.sin(2 * np.pi * (220 + 20 * s) * t)
            path = write_audio(audio_dir / f"{track_id}.wav", wave, 8000)
        else:
            path = Path(f"/music/{track_id}.wav")
        probs = {name: (0.8 if j == s else 0.2 / (n_styles - 1)) for j, name in enumerate(STYLES[:n_styles])}
        records.append(TrackRecord(
            track_id=track_id, path=str(path), embedding=e, probabilities=probs,
            title=HOSTILE_TITLE if hostile and k == 0 else f"Song {k}",
            artist="<img src=x onerror=alert(1)>" if hostile and k == 0 else f"Artist {s}-{k % 3}",
            date=date, genre=None if k % 11 == 5 else STYLES[s], source="tags", duration=0.4))
    store = LibraryStore(root)
    store.add(records)
    return store, styles, held_out, held_styles


def save_plain_map(store) -> None:
    """Save a map without running UMAP (points on a circle), for tests about serving and pages."""
    import pandas as pd

    ids = store.tracks()["track_id"].astype(str)
    angle = np.linspace(0, 2 * np.pi, len(ids), endpoint=False)
    store.save_coordinates(pd.DataFrame({"track_id": ids, "x": np.cos(angle), "y": np.sin(angle)}),
                           {"method": "test circle"})
