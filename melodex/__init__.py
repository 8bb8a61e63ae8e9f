"""Melodex: learned embeddings for studying a music collection.

The Python API in a few names (heavy modules load on first use)::

    from melodex import load_audio, compute_mfcc, load_model
    audio = load_audio("song.mp3", duration=30)      # mono float32 at 22050 Hz
    mfcc = compute_mfcc(first_segment(audio).audio)  # (20, 640)
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_API = {
    "load_audio": "melodex.audio",
    "stream_audio": "melodex.audio",
    "find_audio_files": "melodex.audio",
    "first_segment": "melodex.segments",
    "sliding_segments": "melodex.segments",
    "compute_mfcc": "melodex.features",
    "FeatureConfig": "melodex.features",
    "MFCC": "melodex.features",
    "GenreCNN": "melodex.model",
    "ModelConfig": "melodex.model",
    "load_model": "melodex.checkpoint",
    "load_checkpoint": "melodex.checkpoint",
    "save_checkpoint": "melodex.checkpoint",
    "load_dataset": "melodex.datasets",
    "preprocess_dataset": "melodex.preprocess",
    "TrainConfig": "melodex.train",
    "Predictor": "melodex.predict",
    "FileResult": "melodex.results",
    "LibraryStore": "melodex.store",
    "similar": "melodex.similarity",
    "fit_map": "melodex.mapping",
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
