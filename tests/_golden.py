"""Deterministic inputs and the outputs pinned in ``tests/resources/golden/`` (see test_golden.py).

Everything here goes through the stable public surface only: top-level names of ``melodex``,
``melodex.cli.run_command`` and the root script ``inference.py``. Module paths inside the
package are free to move; these files must keep producing the same numbers and bytes.

Inputs, all made in code:

* two WAV clips written with soundfile as PCM_16, so decoding is bit-exact:
  ``long.wav`` (38 s, 44.1 kHz stereo: downmix and resampling are exercised; more than one
  30-s window in full-file mode) and ``short.wav`` (12 s, 22.05 kHz mono: zero padding);
* a tiny :class:`melodex.GenreCNN` built from ``torch.manual_seed(0)`` with fixed
  standardisation buffers, saved with :func:`melodex.save_checkpoint`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

RESOURCES = Path(__file__).resolve().parent / "resources" / "golden"
REGEN_ENV = "MELODEX_REGEN_GOLDEN"

LABELS = ["Folk", "Pop", "Rock"]
MODEL_KWARGS: dict[str, Any] = {"n_classes": 3, "channels": (4, 8, 8, 16), "embedding_dim": 32}
# Round numbers near this audio's MFCC statistics, so the untrained net's softmax is not
# saturated at 0/1 (a saturated output would pin almost nothing).
FEATURE_MEAN = [-220.0] + [0.0] * 19
FEATURE_STD = [20.0] + [10.0] * 19

CLIP_DIR = "clips"  # relative to the run's working directory: paths in outputs stay relative
CLIPS: dict[str, dict[str, Any]] = {
    "long.wav": {"seconds": 38.0, "sr": 44100, "channels": 2, "seed": 7, "base_hz": 220.0},
    "short.wav": {"seconds": 12.0, "sr": 22050, "channels": 1, "seed": 11, "base_hz": 330.0},
}
CHECKPOINT = "tiny.pth"

# name -> (output file or None for stdout, extra `melodex infer` arguments)
INFER_CASES: dict[str, tuple[str | None, list[str]]] = {
    "first.jsonl": ("out.jsonl", []),
    "full.jsonl": ("out.jsonl", ["--full"]),
    "full_hop10_align.jsonl": ("out.jsonl", ["--full", "--hop", "10", "--last", "align"]),
    "first.json": ("out.json", []),
    "full.json": ("out.json", ["--full"]),
    "first.csv": ("out.csv", []),
    "full.csv": ("out.csv", ["--full"]),
    "first_noemb.csv": ("out.csv", ["--no-embeddings"]),
    "full_noemb.jsonl": ("out.jsonl", ["--full", "--no-embeddings"]),
    "first_table.txt": (None, []),
}


def regenerating() -> bool:
    """True when ``MELODEX_REGEN_GOLDEN=1``: tests write the resources instead of reading them."""
    return os.environ.get(REGEN_ENV, "") == "1"


def make_clip(seconds: float, sr: int, channels: int, seed: int, base_hz: float) -> np.ndarray:
    """A rising two-partial tone, a tremolo band and seeded noise under a slow envelope.

    Returns
    -------
    np.ndarray [shape=(n,) for one channel or (n, channels), dtype=float32], peak below 0.6
    """
    rng = np.random.default_rng(seed)
    n = round(seconds * sr)
    t = np.arange(n) / sr
    phase = 2 * np.pi * np.cumsum(base_hz * 2 ** (t / seconds)) / sr  # one octave glide
    mono = 0.3 * np.sin(phase) + 0.1 * np.sin(3 * phase)
    mono += 0.05 * np.sin(2 * np.pi * 3.1 * t) * np.sin(2 * np.pi * 1500 * t)
    mono += 0.02 * rng.standard_normal(n)
    mono *= 0.6 + 0.4 * np.sin(2 * np.pi * 0.25 * t) ** 2
    if channels == 1:
        return mono.astype(np.float32)
    return np.stack([mono * (1 - 0.2 * c) for c in range(channels)], axis=1).astype(np.float32)


def write_clips(workdir: Path) -> dict[str, Path]:
    """Write every clip of :data:`CLIPS` as PCM_16 WAV under ``workdir/clips``; name -> path."""
    import soundfile as sf

    out = workdir / CLIP_DIR
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, spec in CLIPS.items():
        paths[name] = out / name
        sf.write(paths[name], make_clip(**spec), spec["sr"], subtype="PCM_16")
    return paths


def build_model():
    """The tiny seeded :class:`melodex.GenreCNN` (eval mode) whose outputs are pinned."""
    import torch

    from melodex import GenreCNN, ModelConfig

    torch.manual_seed(0)
    model = GenreCNN(ModelConfig(**MODEL_KWARGS))
    model.set_normalization(torch.tensor(FEATURE_MEAN), torch.tensor(FEATURE_STD))
    return model.eval()


def write_checkpoint(workdir: Path) -> Path:
    """Save :func:`build_model` with :data:`LABELS` and the default features; returns the path."""
    from melodex import FeatureConfig, save_checkpoint

    return save_checkpoint(workdir / CHECKPOINT, build_model(), LABELS, FeatureConfig(), {"note": "golden"})


def state_arrays(model) -> dict[str, np.ndarray]:
    """A model's state dict as numpy arrays (the ``weights.npz`` golden file)."""
    return {name: tensor.detach().cpu().numpy() for name, tensor in model.state_dict().items()}


def infer_argv(case: str) -> tuple[str | None, list[str]]:
    """The output file (None: stdout) and the full ``melodex infer`` argv of one case.

    ``--device cpu --num-workers 0``: no accelerator and no worker processes, so the run is
    the same on any machine this test suite runs on (and quick).
    """
    output, extra = INFER_CASES[case]
    argv = ["--model", CHECKPOINT, "--audio", CLIP_DIR, "--device", "cpu", "--num-workers", "0", "-q"]
    if output is not None:
        argv += ["--output", output]
    return output, argv + extra


def read_text(path: Path) -> str:
    """A file's exact text (no newline translation)."""
    with open(path, encoding="utf-8", newline="") as handle:
        return handle.read()


def write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` exactly (no newline translation), creating its folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as handle:
        handle.write(text)
