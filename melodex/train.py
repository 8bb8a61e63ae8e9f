"""Train the genre CNN on a dataset's MFCCs; every run gets its own timestamped directory.

Features come from the precomputed cache ('melodex preprocess') when it is there and was made
with the same feature parameters; otherwise audio is decoded on the fly every epoch. A file
that cannot be decoded is skipped with a warning. The model is validated every epoch, the best
one on the validation split is kept as model_weights.pth, and the test-split report is written
from it at the end. An interrupted run continues where it stopped with --resume.

Output: training_outputs/YYYY-MM-DD_HH-MM-SS/ with model_weights.pth, params.json,
history.csv, classification_report.txt and train_state.pth; training_outputs/latest names
the newest run.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .constants import DEFAULT_CACHE_DIR, DEFAULT_OUTPUT_ROOT
from .device import DEVICE_CHOICES
from .preprocess import add_dataset_arguments

log = logging.getLogger(__name__)

DEFAULT_EPOCHS = 50
# Settings that define a run; --resume takes them from the run's params.json.
_RUN_SETTINGS = ("data_dir", "metadata_dir", "kind", "subset", "batch_size", "lr", "weight_decay", "seed",
                 "cache_dir", "patience")

__all__ = ["TrainConfig", "TrainResult", "train", "add_arguments", "run"]


@dataclass(frozen=True)
class TrainConfig:
    """Every setting of a training run.

    ``epochs`` None means 50 for a new run and the saved number when resuming. With ``resume``
    (a run directory, a run name under ``output_dir``, or ``"latest"``) the run's own data,
    optimiser, seed and batch settings are used; ``epochs``, ``device``, ``num_workers`` and
    ``progress`` may change.
    """

    data_dir: str | Path = "data/fma_small"
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

    def to_dict(self) -> dict[str, Any]:
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in dataclasses.asdict(self).items()}


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
        from .checkpoint import WEIGHTS_NAME

        return self.run_dir / WEIGHTS_NAME


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_dataset_arguments(parser, cache_help="precomputed MFCCs, used when present and made with the same "
                                             "feature parameters (default: %(default)s)")
    group = parser.add_argument_group("training")
    group.add_argument("--epochs", type=int, default=None, help=f"epochs to train (default: {DEFAULT_EPOCHS}; "
                                                                "with --resume: the run's own)")
    group.add_argument("--batch_size", "--batch-size", type=int, default=32, help="default: %(default)s")
    group.add_argument("--lr", "--learning_rate", "--learning-rate", type=float, default=1e-3,
                       help="Adam learning rate (default: %(default)s)")
    group.add_argument("--weight_decay", "--weight-decay", type=float, default=0.0, help="Adam weight decay (default: 0)")
    group.add_argument("--seed", type=int, default=0, help="seeds weights and shuffling; CPU runs repeat exactly "
                                                           "(default: %(default)s)")
    group.add_argument("--patience", type=int, default=None, metavar="N",
                       help="stop after N epochs without a better validation accuracy (default: never)")
    group.add_argument("--device", default="auto", choices=DEVICE_CHOICES, help="default: %(default)s")
    group.add_argument("--num_workers", "--num-workers", type=int, default=None, metavar="N",
                       help="DataLoader workers decoding audio (default: 0 when every track is cached, "
                            "else up to 4)")
    out = parser.add_argument_group("output")
    out.add_argument("--output_dir", "--output-dir", default=DEFAULT_OUTPUT_ROOT, metavar="DIR",
                     help="runs are written to DIR/YYYY-MM-DD_HH-MM-SS (default: %(default)s)")
    out.add_argument("--resume", nargs="?", const="latest", default=None, metavar="RUN_DIR",
                     help="continue an interrupted run (default RUN_DIR: latest)")


def run(args: argparse.Namespace) -> int:
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    config = TrainConfig(**{k: v for k, v in vars(args).items() if k in names},
                         progress=not getattr(args, "quiet", False))
    result = train(config)
    log.info("best epoch %d: validation accuracy %.4f, test accuracy %.4f", result.best_epoch,
             result.best_val_accuracy, result.test_accuracy)
    log.info("run saved in %s", result.run_dir)
    return 0


def train(config: TrainConfig) -> TrainResult:
    """Train (or resume) one run as ``config`` says; see :class:`TrainConfig`.

    Raises
    ------
    DatasetError
        The dataset cannot be loaded or has no training tracks.
    ResumeError
        ``config.resume`` names no resumable run.
    DeviceError
        ``config.device`` is not available.
    """
    from .device import resolve_device
    from .trainer import Trainer

    device = resolve_device(config.device)
    trainer = Trainer.resume(config, device) if config.resume is not None else Trainer.start(config, device)
    return trainer.fit()


def settings_for_resume(config: TrainConfig, saved: dict[str, Any]) -> TrainConfig:
    """``config`` with the run-defining settings taken from a saved ``params.json``."""
    settings = saved.get("hyperparameters", {})
    changes = {k: settings[k] for k in _RUN_SETTINGS if k in settings}
    changes["epochs"] = config.epochs if config.epochs is not None else settings.get("epochs", DEFAULT_EPOCHS)
    return dataclasses.replace(config, **changes)


def default_num_workers(cached_fraction: float) -> int:
    if cached_fraction >= 1.0:
        return 0
    from .workers import usable_cores

    return max(1, min(4, usable_cores() - 1))


def timer() -> float:
    return time.perf_counter()
