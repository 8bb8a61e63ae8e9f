"""Melodex: learned embeddings for studying a music collection.

The Python API in a few names (heavy modules load on first use)::

    from melodex import load_audio, compute_mfcc, first_segment
    audio = load_audio("song.mp3", duration=30)      # mono float32 at 22050 Hz
    mfcc = compute_mfcc(first_segment(audio).audio)  # (20, 640)

    from melodex import LibraryStore, MusicMap, similar, all_artists, main
    main(["index", "--audio", "music/", "--model", "training_outputs/latest"])  # any command, as in a shell
    store = LibraryStore("melodex_outputs/library")
    xy = MusicMap(random_state=42).fit(store.embeddings()).embedding_        # (n, 2)
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_API = {
    "load_audio": "melodex.audio.decode",
    "stream_audio": "melodex.audio.decode",
    "find_audio_files": "melodex.audio.files",
    "first_segment": "melodex.audio.segments",
    "sliding_segments": "melodex.audio.segments",
    "compute_mfcc": "melodex.features.mfcc",
    "FeatureConfig": "melodex.features.mfcc",
    "MFCC": "melodex.features.mfcc",
    "GenreCNN": "melodex.model.cnn",
    "ModelConfig": "melodex.model.cnn",
    "load_model": "melodex.model.checkpoint",
    "load_checkpoint": "melodex.model.checkpoint",
    "save_checkpoint": "melodex.model.checkpoint",
    "load_dataset": "melodex.datasets",
    "preprocess_dataset": "melodex.training.preprocess",
    "TrainConfig": "melodex.training.config",
    "Predictor": "melodex.inference.predictor",
    "FileResult": "melodex.inference.results",
    "LibraryStore": "melodex.library.store",
    "similar": "melodex.analysis.similarity",
    "SimilarityIndex": "melodex.analysis.similarity",
    "fit_map": "melodex.analysis.mapping",
    "MusicMap": "melodex.analysis.mapping",
    "place_on_map": "melodex.analysis.mapping",
    "write_html_map": "melodex.analysis.map_page",
    "all_artists": "melodex.analysis.evolution",
    "artist_rows": "melodex.analysis.evolution",
    "artist_timeline": "melodex.analysis.evolution",
    "drift_score": "melodex.analysis.evolution",
    "collection_scale": "melodex.analysis.evolution",
    "year_centroids": "melodex.analysis.evolution",
    "write_demo_corpus": "melodex.demo.corpus",
    "main": "melodex.cli",
    "MelodexError": "melodex.errors",
    "AudioLoadError": "melodex.errors",
    "ModelLoadError": "melodex.errors",
    "DatasetError": "melodex.errors",
}

__all__ = sorted(_API) + ["__version__"]


def __getattr__(name: str) -> Any:
    if name in _API:
        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'melodex' has no attribute {name!r}")
