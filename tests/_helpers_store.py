"""Test data for the store/similarity/evolution tests: inference JSONL lines and synthetic stores."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

LABELS = ("Folk", "Pop", "Rock")


def jsonl_line(audio_file: str, embedding: np.ndarray, probs: dict[str, float], duration: float = 30.0) -> dict:
    """One successful line in the inference JSONL format."""
    top = sorted(probs.items(), key=lambda kv: -kv[1])[:3]
    return {"audio_file": audio_file, "mode": "first-30s", "duration": duration, "total_segments": 1,
            "segments": [{"segment_index": 0, "start_time": 0.0, "end_time": duration, "predictions": probs}],
            "global_prediction": {"top_labels": [k for k, _ in top], "probabilities": [v for _, v in top],
                                  "all_probabilities": probs},
            "embedding": [float(x) for x in embedding]}


def write_jsonl(path: Path, lines: list[dict]) -> Path:
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    return path


def clustered_embeddings(rng: np.random.Generator, n_per: int, n_clusters: int, dim: int = 512,
                         spread: float = 0.6) -> tuple[np.ndarray, np.ndarray]:
    """ReLU-like embeddings around ``n_clusters`` centres: ``(X [n, dim] float32, cluster [n])``."""
    centres = np.abs(rng.standard_normal((n_clusters, dim)))
    cluster = np.repeat(np.arange(n_clusters), n_per)
    x = centres[cluster] + spread * rng.standard_normal((cluster.size, dim))
    return np.maximum(x, 0).astype(np.float32), cluster


def synthetic_store(root: Path, rng: np.random.Generator, n_per: int = 20, n_clusters: int = 3):
    """A store of clustered tracks; each cluster is one genre (``LABELS``). Returns (store, cluster ids)."""
    from melodex.library.store import LibraryStore, TrackRecord

    x, cluster = clustered_embeddings(rng, n_per, n_clusters)
    labels = [f"G{c}" for c in range(n_clusters)]
    records = []
    for i, (vec, c) in enumerate(zip(x, cluster)):
        probs = {lab: (0.8 if j == c else 0.2 / (n_clusters - 1)) for j, lab in enumerate(labels)}
        records.append(TrackRecord(f"t{i:04d}", f"/music/{i}.mp3", vec, probs, title=f"Track {i}",
                                   artist=f"Artist {c}", genre=labels[c], source="manifest"))
    store = LibraryStore(root)
    store.add(records)
    return store, cluster


def mfcc_summary_embeddings(paths: list[Path]) -> np.ndarray:
    """A stand-in for learned embeddings: per-file MFCC means and standard deviations (40 values),
    z-scored per dimension over the given files, so no dimension (like c0, loudness) dominates."""
    from melodex.audio.decode import load_audio
    from melodex.features.mfcc import compute_mfcc

    rows = []
    for path in paths:
        mfcc = compute_mfcc(load_audio(path))
        rows.append(np.concatenate([mfcc.mean(axis=1), mfcc.std(axis=1)]))
    x = np.asarray(rows, dtype=np.float64)
    return ((x - x.mean(axis=0)) / np.where(x.std(axis=0) > 0, x.std(axis=0), 1.0)).astype(np.float32)
