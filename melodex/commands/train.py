"""TODO docstring."""

from __future__ import annotations

import argparse
import dataclasses
import logging

from melodex.commands.options import add_dataset_arguments
from melodex.constants import DEFAULT_OUTPUT_ROOT
from melodex.training.config import DEFAULT_EPOCHS, TrainConfig
from melodex.training.trainer import train
from melodex.util.device import DEVICE_CHOICES

log = logging.getLogger(__name__)


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
