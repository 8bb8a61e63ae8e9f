"""Saving and loading models as plain data that cannot run code.

A checkpoint is a dict of plain types and tensors, written with ``torch.save`` and read with
``torch.load(..., weights_only=True)``::

    {
        "format": "melodex-checkpoint", "version": 1,
        "model_config": {...},      # ModelConfig.to_dict()
        "feature_config": {...},    # FeatureConfig.to_dict()
        "labels": ["Electronic", ...],
        "state_dict": {...},        # tensors only
        "metadata": {...},          # free-form plain data: run, epoch, metrics
    }

A file that needs pickled classes to load (and so could execute code) is refused with a
:class:`~melodex.errors.ModelLoadError`; so is anything that is not a Melodex checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from melodex.constants import WEIGHTS_NAME
from melodex.errors import ModelLoadError
from melodex.features.mfcc import FeatureConfig
from melodex.model.cnn import GenreCNN, ModelConfig
from melodex.util.atomic import atomic_write

CHECKPOINT_FORMAT = "melodex-checkpoint"
CHECKPOINT_VERSION = 1


@dataclass
class Checkpoint:
    """A loaded checkpoint: enough to rebuild the model and the features it expects."""

    model_config: ModelConfig
    feature_config: FeatureConfig
    labels: list[str]
    state_dict: dict[str, torch.Tensor]
    metadata: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None

    def __repr__(self) -> str:
        """A summary (labels, sizes, where from), never the tensors themselves."""
        n_params = sum(int(t.numel()) for t in self.state_dict.values() if isinstance(t, torch.Tensor))
        labels = ", ".join(self.labels[:6]) + (f", ... ({len(self.labels)} in all)" if len(self.labels) > 6 else "")
        heads = "headless (no genre head)" if self.headless else f"{len(self.labels)} labels [{labels}]"
        return (f"Checkpoint({self.path or 'in memory'}: {heads}, "
                f"{n_params:,} weights in {len(self.state_dict)} tensors, "
                f"{self.model_config.embedding_dim}-d embedding, {self.feature_config.n_mfcc} MFCCs x "
                f"{self.feature_config.n_frames} frames, metadata keys {sorted(self.metadata)})")

    __str__ = __repr__

    @property
    def headless(self) -> bool:
        """True for a model trained without labels: no genre head, an empty label list."""
        return self.model_config.n_classes == 0

    def build_model(self, device: torch.device | str = "cpu") -> GenreCNN:
        """A :class:`GenreCNN` with these weights, in eval mode, on ``device``."""
        model = GenreCNN(self.model_config)
        try:
            model.load_state_dict(self.state_dict)
        except RuntimeError as exc:
            where = self.path or "checkpoint"
            raise ModelLoadError(f"{where}: weights do not fit the saved model configuration ({exc})") from None
        return model.to(device).eval()


def checkpoint_dict(
    model: GenreCNN,
    labels: list[str],
    feature_config: FeatureConfig,
    metadata: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The plain-data dict :func:`save_checkpoint` writes."""
    if len(labels) != model.config.n_classes:
        raise ValueError(f"{len(labels)} labels for a model with {model.config.n_classes} classes")
    return {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "model_config": model.config.to_dict(),
        "feature_config": feature_config.to_dict(),
        "labels": [str(label) for label in labels],
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "metadata": dict(metadata or {}),
    }


def save_checkpoint(
    path: str | Path,
    model: GenreCNN,
    labels: list[str],
    feature_config: FeatureConfig,
    metadata: dict[str, Any] | None = None,
) -> Path:
    """Write ``model`` to ``path`` atomically; returns the path."""
    path = Path(path)
    with atomic_write(path, "wb") as handle:
        torch.save(checkpoint_dict(model, labels, feature_config, metadata), handle)
    return path


def resolve_model_path(path: str | Path) -> Path:
    """A ``.pth`` file, a run directory, or a ``latest`` link -> the weights file.

    Raises ModelLoadError naming the path when nothing is there.
    """
    path = Path(path)
    if path.is_dir():
        candidate = path / WEIGHTS_NAME
        if not candidate.is_file():
            raise ModelLoadError(f"{path}: directory holds no {WEIGHTS_NAME}{_run_hint(path)}")
        return candidate
    if not path.exists():
        # A 'latest' that is a plain text file (where symlinks are not available).
        if path.name == "latest" and path.with_name("latest.txt").is_file():
            return resolve_model_path(path.parent / path.with_name("latest.txt").read_text().strip())
        raise ModelLoadError(f"{path}: no such model file or run directory")
    return path


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Read a checkpoint safely (``weights_only=True``) and check that it is Melodex's.

    Raises
    ------
    ModelLoadError
        The path is missing, the file is not a checkpoint, needs code execution to load,
        or lacks a required field. The message names the file.
    """
    file = resolve_model_path(path)
    if not os.access(file, os.R_OK):
        raise ModelLoadError(f"{file}: permission denied")
    try:
        data = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as exc:  # UnpicklingError, RuntimeError, EOFError, zipfile errors...
        raise ModelLoadError(f"{file}: {load_failure_reason(file, exc)}") from None
    if not isinstance(data, dict) or data.get("format") != CHECKPOINT_FORMAT:
        raise ModelLoadError(f"{file}: not a Melodex checkpoint (no 'format': '{CHECKPOINT_FORMAT}' field)")
    if int(data.get("version", 0)) > CHECKPOINT_VERSION:
        raise ModelLoadError(f"{file}: checkpoint version {data.get('version')} is newer than this Melodex reads")
    try:
        ckpt = Checkpoint(
            model_config=ModelConfig.from_dict(data["model_config"]),
            feature_config=FeatureConfig.from_dict(data["feature_config"]),
            labels=[str(label) for label in data["labels"]],
            state_dict=dict(data["state_dict"]),
            metadata=dict(data.get("metadata") or {}),
            path=file,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelLoadError(f"{file}: malformed Melodex checkpoint ({exc})") from None
    if len(ckpt.labels) != ckpt.model_config.n_classes:
        raise ModelLoadError(f"{file}: {len(ckpt.labels)} labels for {ckpt.model_config.n_classes} classes")
    return ckpt


def model_fingerprint(ckpt: Checkpoint) -> str:
    """A short hash (16 hex digits) of what decides a model's embeddings: its weights, labels,
    model configuration and feature parameters. Two checkpoints with the same fingerprint embed
    every file alike; training metadata (run, epoch, metrics) and the file's path do not count."""
    digest = hashlib.sha256()
    settings = {"model": ckpt.model_config.to_dict(), "features": ckpt.feature_config.to_dict(),
                "labels": list(ckpt.labels)}
    digest.update(json.dumps(settings, sort_keys=True, default=str).encode("utf-8"))
    for name in sorted(ckpt.state_dict):
        tensor = ckpt.state_dict[name].detach().cpu().contiguous()
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)};".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]


def load_model(path: str | Path, device: torch.device | str = "cpu") -> tuple[GenreCNN, Checkpoint]:
    """Load a checkpoint and build its model on ``device`` in eval mode."""
    ckpt = load_checkpoint(path)
    return ckpt.build_model(device), ckpt


def _run_hint(folder: Path) -> str:
    """For a folder without weights: "; did you mean <run>?" when it holds training runs."""
    latest = folder / "latest"
    if latest.exists() or (folder / "latest.txt").is_file():
        return f"; did you mean {latest}?"
    runs = sorted(p for p in folder.iterdir() if (p / WEIGHTS_NAME).is_file())
    return f"; did you mean {runs[-1]}?" if runs else ""


def _text_file_reason(file: Path, head: bytes) -> str | None:
    """Why a text file (JSON or not) is no checkpoint; None when ``head`` is not text."""
    try:
        text = head.decode("utf-8").lstrip()
    except UnicodeDecodeError:
        return None
    if not text or any(ch in text for ch in "\x00\x01\x02\x03"):
        return None
    if text[:1] in "{[":
        where = f"; did you mean {file.parent}?" if (file.parent / WEIGHTS_NAME).is_file() else ""
        return f"a JSON file, not a model checkpoint{where or '; give a .pth file or a run folder'}"
    return "a text file, not a model checkpoint; give a .pth file or a run folder"


def load_failure_reason(file: Path, exc: Exception) -> str:
    """Why ``torch.load(weights_only=True)`` refused ``file``, in one line."""
    text = str(exc)
    match = re.search(r"unsupported GLOBAL (\S+)", text, re.IGNORECASE)
    if match:
        return f"refused: the file would import and run {match.group(1)} when loaded (pickled code)"
    with open(file, "rb") as handle:
        head = handle.read(512)
    if head[:1] == b"\x80":
        return "refused: a raw Python pickle, not a torch checkpoint; it is never unpickled"
    if not head:
        return "an empty file, not a model checkpoint"
    reason = _text_file_reason(file, head)
    if reason:
        return reason
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    detail = next((ln for ln in lines if ln.startswith("Unsupported") or "error" in ln.lower()), lines[0] if lines else "")
    return f"not a readable torch checkpoint ({detail or type(exc).__name__})"
