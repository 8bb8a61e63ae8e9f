"""TODO docstring."""

from __future__ import annotations

import argparse

from melodex.constants import DEFAULT_CACHE_DIR
from melodex.datasets.base import Dataset


def add_dataset_arguments(parser: argparse.ArgumentParser, *, cache_help: str) -> None:
    """The options that pick a dataset and a cache, shared by ``preprocess`` and ``train``."""
    group = parser.add_argument_group("dataset")
    group.add_argument("--data_dir", "--data-dir", default="data/fma_small", metavar="DIR",
                       help="the audio: an FMA folder, a folder per label, or a manifest (default: %(default)s)")
    group.add_argument("--metadata_dir", "--metadata-dir", default=None, metavar="DIR",
                       help="FMA metadata holding tracks.csv (default: DATA_DIR/../fma_metadata)")
    group.add_argument("--kind", default="auto", help="dataset layout: auto, or a kind melodex.datasets knows (default: auto)")
    group.add_argument("--subset", default=None, help="FMA subset to use: small, medium or large (default: what DATA_DIR holds)")
    group.add_argument("--cache_dir", "--cache-dir", default=DEFAULT_CACHE_DIR, metavar="DIR", help=cache_help)


def load_dataset_from_args(args: argparse.Namespace, *, seed: int = 0) -> Dataset:
    """:func:`melodex.datasets.load_dataset` with the options of :func:`add_dataset_arguments`."""
    from melodex.datasets import load_dataset

    return load_dataset(args.data_dir, metadata_dir=args.metadata_dir, kind=args.kind, subset=args.subset, seed=seed)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {value}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, not {text}")
    return value
