"""Shared fixtures: a seeded rng, generated audio files, and a tiny model built in code."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


def tone(seconds: float, sr: int = 44100, freq: float = 440.0, channels: int = 2, seed: int = 0) -> np.ndarray:
    """A harmonic tone with a little noise, (n,) or (n, channels), amplitude below 0.5."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    mono = 0.3 * np.sin(2 * np.pi * freq * t) + 0.1 * np.sin(2 * np.pi * 2 * freq * t)
    mono += 0.02 * rng.standard_normal(t.size)
    if channels == 1:
        return mono.astype(np.float32)
    return np.stack([mono * (1 - 0.1 * c) for c in range(channels)], axis=1).astype(np.float32)


@pytest.fixture
def make_audio(tmp_path):
    """make_audio(name, seconds=3, sr=44100, ...) writes a file under tmp_path and returns its path."""
    from melodex.audio.encode import write_audio

    def _make(name: str, seconds: float = 3.0, sr: int = 44100, freq: float = 440.0, channels: int = 2, **kw) -> Path:
        return write_audio(tmp_path / name, tone(seconds, sr, freq, channels), sr, **kw)

    return _make


@pytest.fixture
def tiny_checkpoint(tmp_path) -> Path:
    """A checkpoint of an untrained model with three labels, saved the real way."""
    import torch

    from melodex.features.mfcc import FeatureConfig
    from melodex.model.checkpoint import save_checkpoint
    from melodex.model.cnn import GenreCNN, ModelConfig

    torch.manual_seed(0)
    model = GenreCNN(ModelConfig(n_classes=3))
    return save_checkpoint(tmp_path / "tiny.pth", model, ["Folk", "Pop", "Rock"], FeatureConfig(), {"note": "test"})


def run_script(args: list[str], cwd: Path | None = None, timeout: float = 600):
    """Run a command line through this Python (``python -m melodex ...`` or a root script)."""
    import subprocess

    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
