"""The settings of a training run (:class:`TrainConfig`) and what a run reports back
(:class:`TrainResult`); ``melodex train`` builds one from its flags, and ``--resume`` takes the
settings that define a run from its ``params.json`` (:func:`settings_for_resume`).
"""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from melodex.constants import (
    CONTRASTIVE_MAX_EPOCHS,
    CONTRASTIVE_PAIRS,
    DEFAULT_CACHE_DIR,
    DEFAULT_DATA_DIR,
    DEFAULT_EPOCHS,
    DEFAULT_OUTPUT_ROOT,
    WEIGHTS_NAME,
)
from melodex.errors import MelodexError

log = logging.getLogger(__name__)

# Settings that define a run; --resume takes them from the run's params.json.
_RUN_SETTINGS = ("data_dir", "metadata_dir", "kind", "subset", "batch_size", "lr", "weight_decay", "seed",
                 "cache_dir", "patience", "augment", "objective", "audio", "manifest", "temperature",
                 "view_seconds", "projection_dim", "init_from", "spec_mask", "mix", "keep", "segments")
OBJECTIVES = ("supervised", "contrastive")
KEEPS = ("best", "last")


@dataclass(frozen=True)
class TrainConfig:
    """Every setting of a training run.

    ``epochs`` None means :func:`epochs_for` for a new run and the saved number when resuming.
    With ``resume`` (a run directory, a run name under ``output_dir``, or ``"latest"``) the run's
    own data, optimiser, seed and batch settings are used; ``epochs``, ``device``, ``num_workers`` and
    ``progress`` may change. ``augment`` (on by default) trains on augmented clips as
    :mod:`melodex.training.augment` describes; False trains on the clean MFCCs only, as before.

    ``objective`` ``"contrastive"`` trains without labels on the files under ``audio`` (folders
    or files; see :mod:`melodex.training.contrastive`): ``temperature`` is NT-Xent's, each view
    is ``view_seconds`` long, and the projection head that only the loss sees maps the 512-d
    embedding to ``projection_dim``; ``spec_mask`` (a width; 0, the default, off) and ``mix`` (a
    chance; 0 off) make the training views harder (:mod:`melodex.training.view_augment`).
    ``segments`` (8; 1: the first segment only) lets views come from up to that many 30-s segments
    spread over each track (:mod:`melodex.training.segment_bank`). ``keep`` ``"last"`` keeps the
    last epoch (as SimCLR does), ``"best"`` the epoch with the best validation pair accuracy.
    These defaults are the settings measured best on real music (README, "Benchmarks"); runs saved
    before them resume with their own. ``metadata_dir`` (FMA) and ``manifest`` then only name the
    validation tracks' artists and albums for the retrieval report. ``init_from`` (a run directory
    or checkpoint) starts a run from another run's backbone and embedding weights.
    """

    data_dir: str | Path = DEFAULT_DATA_DIR
    metadata_dir: str | Path | None = None
    kind: str = "auto"
    subset: str | None = None
    epochs: int | None = None
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.0
    seed: int = 0
    device: str = "auto"
    cache_dir: str | Path | None = DEFAULT_CACHE_DIR
    output_dir: str | Path = DEFAULT_OUTPUT_ROOT
    resume: str | Path | None = None
    num_workers: int | None = None
    patience: int | None = None
    progress: bool = True
    augment: bool = True
    objective: str = "supervised"
    audio: tuple[str, ...] = ()
    manifest: str | Path | None = None
    temperature: float = 0.1
    view_seconds: float = 5.0
    projection_dim: int = 128
    spec_mask: float = 0.0
    mix: float = 0.0
    keep: str = "last"
    segments: int = 8
    init_from: str | Path | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: (str(v) if isinstance(v, Path) else list(v) if isinstance(v, tuple) else v)
                for k, v in dataclasses.asdict(self).items()}


@dataclass(frozen=True)
class TrainResult:
    """What a finished run produced. Accuracies are fractions in [0, 1] (NaN when a split is empty)."""

    run_dir: Path
    best_epoch: int
    best_val_accuracy: float
    test_accuracy: float
    epochs_run: int
    stopped_early: bool
    report: str

    @property
    def weights_path(self) -> Path:
        return self.run_dir / WEIGHTS_NAME


def epochs_for(objective: str, training_tracks: int) -> int:
    """The epochs a new run trains without ``--epochs``: ``DEFAULT_EPOCHS``; a contrastive run on a
    small collection more, enough to see ``CONTRASTIVE_PAIRS`` training pairs (at most
    ``CONTRASTIVE_MAX_EPOCHS``). A pair is two views of one track; an epoch shows one per training track."""
    if objective != "contrastive" or training_tracks < 1:
        return DEFAULT_EPOCHS
    return max(DEFAULT_EPOCHS, min(CONTRASTIVE_MAX_EPOCHS, math.ceil(CONTRASTIVE_PAIRS / training_tracks)))


def settings_for_resume(config: TrainConfig, saved: dict[str, Any]) -> TrainConfig:
    """``config`` with the run-defining settings taken from a saved ``params.json``."""
    settings = saved.get("hyperparameters", {})
    changes = {k: settings[k] for k in _RUN_SETTINGS if k in settings}
    changes.setdefault("augment", False)  # a run saved before augmentation existed trained without it
    for name in ("spec_mask", "mix"):  # nor did one saved before the views were masked or mixed
        changes.setdefault(name, 0.0)
    changes.setdefault("keep", "best")  # and one saved before these options kept the best epoch
    changes.setdefault("segments", 1)  # of views from the first segment
    changes["audio"] = tuple(changes.get("audio") or ())
    changes["epochs"] = config.epochs if config.epochs is not None else settings.get("epochs", DEFAULT_EPOCHS)
    return dataclasses.replace(config, **changes)


def check_settings(config: TrainConfig) -> None:
    """Raise :class:`MelodexError` (one line naming the flag) for a setting no run can use."""
    for name in ("epochs", "batch_size"):  # epochs None: the default, known once the data is
        if getattr(config, name) is not None and int(getattr(config, name)) < 1:
            raise MelodexError(f"--{name} must be at least 1, not {getattr(config, name)}")
    if config.lr <= 0:
        raise MelodexError(f"--lr must be positive, not {config.lr}")
    if config.patience is not None and config.patience < 1:
        raise MelodexError(f"--patience must be at least 1, not {config.patience}")
    if config.objective not in OBJECTIVES:
        raise MelodexError(f"--objective must be one of {', '.join(OBJECTIVES)}, not {config.objective!r}")
    if config.objective == "contrastive":
        if not config.audio:
            raise MelodexError("--objective contrastive needs --audio DIR [DIR ...] (any folders of audio, no labels)")
        if not 0 < config.temperature <= 10:
            raise MelodexError(f"--temperature must be above 0 and at most 10, not {config.temperature}")
        if config.view_seconds <= 0:
            raise MelodexError(f"--view-seconds must be positive, not {config.view_seconds}")
        if not 0 <= config.spec_mask < 0.5:
            raise MelodexError(f"--spec-mask must be at least 0 and below 0.5, not {config.spec_mask}")
        if not 0 <= config.mix <= 1:
            raise MelodexError(f"--mix must be between 0 and 1, not {config.mix}")
        if config.keep not in KEEPS:
            raise MelodexError(f"--keep must be one of {', '.join(KEEPS)}, not {config.keep!r}")
        if int(config.segments) < 1:
            raise MelodexError(f"--segments must be at least 1, not {config.segments}")
    elif config.audio:
        raise MelodexError("--audio is for --objective contrastive; supervised training reads --data_dir")
