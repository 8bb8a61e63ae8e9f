"""Train the genre CNN on a dataset's MFCCs; every run gets its own timestamped directory.

Features come from the precomputed cache ('melodex preprocess') when it is there and was made
with the same feature parameters; otherwise audio is decoded on the fly every epoch. A file
that cannot be decoded is skipped with a warning. The model is validated every epoch, the best
one on the validation split is kept as model_weights.pth, and the test-split report is written
from it at the end. An interrupted run continues where it stopped with --resume.

Training is augmented by default (--no-augment turns it off): each training clip is decoded once
and a few band-limited, re-encoded, noisy and shifted versions of it are kept next to the cache;
every epoch shows a clip clean or as one of them. params.json records the settings.

Started by torchrun (torchrun --nproc_per_node N train.py ..., or torchrun ... -m melodex train ...),
it trains with DistributedDataParallel, N processes on shares of the training split; rank 0 alone
writes the run (see "On a cluster" in the README).

Output: training_outputs/YYYY-MM-DD_HH-MM-SS/ with model_weights.pth, params.json,
history.csv, classification_report.txt and train_state.pth; training_outputs/latest names
the newest run.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging

from melodex.commands.options import (
    add_batch_size,
    add_dataset_arguments,
    add_device,
    add_num_workers,
    positive_int,
)
from melodex.constants import DEFAULT_EPOCHS, DEFAULT_OUTPUT_ROOT

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_dataset_arguments(parser, cache_help="precomputed MFCCs, used when present and made with the same "
                                             "feature parameters (default: %(default)s)")
    group = parser.add_argument_group("training")
    group.add_argument("--epochs", type=positive_int, default=None, help=f"epochs to train (default: {DEFAULT_EPOCHS}; "
                                                                "with --resume: the run's own)")
    add_batch_size(group, default=32, what="tracks per training step")
    group.add_argument("--lr", "--learning_rate", "--learning-rate", type=float, default=1e-3,
                       help="Adam learning rate (default: %(default)s)")
    group.add_argument("--weight_decay", "--weight-decay", type=float, default=0.0, help="Adam weight decay (default: 0)")
    group.add_argument("--seed", type=int, default=0, help="seeds weights and shuffling; CPU runs repeat exactly "
                                                           "(default: %(default)s)")
    group.add_argument("--patience", type=positive_int, default=None, metavar="N",
                       help="stop after N epochs without a better validation accuracy (default: never)")
    group.add_argument("--augment", action=argparse.BooleanOptionalAction, default=True,
                       help="train on augmented clips too: random crop, low-pass 4-11 kHz, low-rate codecs, "
                            "noise and gain, so embeddings stay put across encodings; variants are made once per "
                            "clip under CACHE_DIR/augmented (default: on; --no-augment: clean MFCCs only)")
    add_device(group)
    add_num_workers(group, default=None, what="DataLoader workers decoding audio (default: 0 when every track "
                                               "is cached, else up to 4)")
    out = parser.add_argument_group("output")
    out.add_argument("--output_dir", "--output-dir", default=DEFAULT_OUTPUT_ROOT, metavar="DIR",
                     help="runs are written to DIR/YYYY-MM-DD_HH-MM-SS (default: %(default)s)")
    out.add_argument("--resume", nargs="?", const="latest", default=None, metavar="RUN_DIR",
                     help="continue an interrupted run (default RUN_DIR: latest)")


def run(args: argparse.Namespace) -> int:
    from melodex.training.config import TrainConfig
    from melodex.training.trainer import train

    names = {f.name for f in dataclasses.fields(TrainConfig)}
    config = TrainConfig(**{k: v for k, v in vars(args).items() if k in names},
                         progress=not getattr(args, "quiet", False))
    result = train(config)
    log.info("best epoch %d: validation accuracy %.4f, test accuracy %.4f", result.best_epoch,
             result.best_val_accuracy, result.test_accuracy)
    log.info("run saved in %s", result.run_dir)
    return 0
