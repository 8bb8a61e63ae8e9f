"""Starting a run from another run's weights (``melodex train --init-from RUN``).

A supervised run can begin from a contrastive run (or any run): the convolutional backbone, the
512-d embedding layer and the feature normalisation it was trained with are copied; the genre
head is new (initialised from the seed), since the labels differ or the source had none. Both
models must have the same architecture (channels, embedding size, MFCC shape).
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from melodex.errors import ModelLoadError
from melodex.model.checkpoint import load_checkpoint
from melodex.model.cnn import GenreCNN

log = logging.getLogger(__name__)

HEAD_PREFIX = "head."


def start_from(model: GenreCNN, source: str | Path) -> dict[str, str]:
    """Copy every weight of ``source`` (a run directory, ``.../latest`` or a checkpoint) but its
    genre head into ``model``; returns what was copied from where (for ``params.json``).

    Raises :class:`ModelLoadError` (one line naming the file) when ``source`` is not a readable
    checkpoint or its architecture differs from ``model``'s.
    """
    ckpt = load_checkpoint(source)
    mine, theirs = model.config.to_dict(), ckpt.model_config.to_dict()
    differ = [k for k in mine if k != "n_classes" and mine[k] != theirs.get(k)]
    if differ:
        raise ModelLoadError(f"{ckpt.path}: --init-from needs the same architecture; it differs in "
                             + ", ".join(f"{k} ({theirs.get(k)} there, {mine[k]} here)" for k in differ))
    weights = {k: v for k, v in ckpt.state_dict.items() if not k.startswith(HEAD_PREFIX)}
    with torch.no_grad():
        missing, unexpected = model.load_state_dict(weights, strict=False)
    left = [k for k in missing if not k.startswith(HEAD_PREFIX)]
    if left or unexpected:
        raise ModelLoadError(f"{ckpt.path}: --init-from found no weights for {left[:3]} (and {list(unexpected)[:3]})")
    log.info("starting from the backbone and embedding of %s (%s); the genre head is new", ckpt.path,
             "trained without labels" if ckpt.headless else f"{len(ckpt.labels)} labels")
    return {"checkpoint": str(ckpt.path), "headless": str(ckpt.headless)}
