"""Every option that more than one command takes, defined and validated once.

A command adds ``--device``, ``--model``, ``--store``, ``--batch-size``, ``--num-workers`` or
the dataset flags through the functions here, so the spelling, the default, the help text and
the check are the same everywhere. Values are checked while the command line is parsed
(argparse reports a bad one as a usage error, exit 2), and nothing heavy is imported: building
the parser must stay instant.
"""

from __future__ import annotations

import argparse
import re
from typing import Any

from melodex.constants import (
    ACCEPTED_DEVICES,
    DEFAULT_CACHE_DIR,
    DEFAULT_DATA_DIR,
    DEFAULT_DEMO_OUT,
    DEFAULT_STORE,
    DEVICE_PATTERN,
)

_DEVICE_RE = re.compile(DEVICE_PATTERN)

# argparse's parsers and argument groups both have add_argument
Adder = Any


def positive_int(text: str) -> int:
    """An integer of at least 1 (``--batch-size``, ``-k``, ``--part-size``)."""
    value = _int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def non_negative_int(text: str) -> int:
    """An integer of at least 0 (``--num-workers``: 0 means in this process)."""
    value = _int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {value}")
    return value


def positive_seconds(text: str) -> float:
    """A finite number of seconds above 0 (``--hop``)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of seconds, not {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, not {text}")
    return value


def device_name(text: str) -> str:
    """``auto``, ``cpu``, ``cuda`` or ``cuda:N``; whether the device exists is checked when the
    command runs (:func:`melodex.util.device.resolve_device`), after parsing."""
    name = text.strip().lower()
    if not _DEVICE_RE.match(name):
        raise argparse.ArgumentTypeError(f"{text!r} is not a device Melodex runs on; choose from {ACCEPTED_DEVICES}")
    return name


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, not {text!r}") from None


def add_device(parser: Adder) -> None:
    """``--device``: where the model runs."""
    parser.add_argument("--device", type=device_name, default="auto", metavar="DEVICE",
                        help="auto (default: cuda when present, else cpu), cpu, cuda or cuda:N")


def add_model(parser: Adder, *, required: bool, purpose: str = "") -> None:
    """``--model``: a checkpoint, a run folder, or ``training_outputs/latest``."""
    parser.add_argument("--model", required=required, metavar="MODEL",
                        help="a .pth checkpoint, a run directory, or training_outputs/latest" + purpose)


def add_store(parser: Adder) -> None:
    """``--store``: the library store folder."""
    parser.add_argument("--store", default=DEFAULT_STORE, metavar="DIR",
                        help=f"library store folder (default {DEFAULT_STORE})")


def add_batch_size(parser: Adder, *, default: int, what: str = "segments per forward pass") -> None:
    """``--batch-size`` (``--batch_size`` as the seed spelled it)."""
    parser.add_argument("--batch-size", "--batch_size", dest="batch_size", type=positive_int, default=default,
                        metavar="N", help=f"{what} (default: {default})")


def add_num_workers(parser: Adder, *, default: int | None, what: str) -> None:
    """``--num-workers`` (``--num_workers``): worker processes; 0 means in this process."""
    parser.add_argument("--num-workers", "--num_workers", dest="num_workers", type=non_negative_int,
                        default=default, metavar="N", help=what)


ENGINES = ("local", "ray")


def add_engine(parser: Adder) -> None:
    """``--engine`` and ``--address``: run the pipeline in this machine's worker processes, or as
    a Ray Data pipeline on a Ray cluster (the optional ``ray`` extra)."""
    parser.add_argument("--engine", choices=ENGINES, default="local",
                        help="local (default: worker processes on this machine) or ray (a Ray Data pipeline: decode "
                             "tasks, then an actor pool for MFCC + model; pip install 'melodex[ray]')")
    parser.add_argument("--address", metavar="ADDRESS",
                        help="with --engine ray: the cluster to join (auto: the one 'ray start' began on this "
                             "machine; host:6379; ray://host:10001); default: a local Ray instance")


def uses_ray(args: argparse.Namespace) -> bool:
    """True for ``--engine ray`` (after checking that Ray is installed: without it, one line on
    how to install it), False for the local engine (which refuses ``--address``)."""
    import importlib.util

    from melodex.engines import RAY_INSTALL_HINT
    from melodex.errors import MelodexError

    if args.engine == "local":
        if args.address:
            raise MelodexError("--address applies to --engine ray only")
        return False
    if importlib.util.find_spec("ray") is None:
        raise MelodexError(RAY_INSTALL_HINT)
    return True


def make_predictor(args: argparse.Namespace, model):
    """The engine's predictor for ``model`` (a path, or a loaded checkpoint for the Ray engine,
    a ``(model, checkpoint)`` pair for the local one): both yield the same ``FileResult``s."""
    from melodex.errors import MelodexError

    if not uses_ray(args):
        from melodex.inference.predictor import Predictor

        return Predictor(model, device=args.device, batch_size=args.batch_size, num_workers=args.num_workers)
    if getattr(args, "use_legacy", False):
        raise MelodexError("--use-legacy is the local engine's reference path; leave out --engine ray")
    from melodex.engines.ray_engine import RayPredictor

    return RayPredictor(model, device=args.device, batch_size=args.batch_size, address=args.address)


def add_dataset_arguments(parser: argparse.ArgumentParser, *, cache_help: str) -> None:
    """The options that pick a dataset and a cache, shared by ``preprocess`` and ``train``."""
    group = parser.add_argument_group("dataset")
    group.add_argument("--data_dir", "--data-dir", default=DEFAULT_DATA_DIR, metavar="DIR",
                       help="the audio: an FMA folder, a folder per label, or a manifest (default: %(default)s)")
    group.add_argument("--metadata_dir", "--metadata-dir", default=None, metavar="DIR",
                       help="FMA metadata holding tracks.csv (default: DATA_DIR/../fma_metadata)")
    group.add_argument("--kind", default="auto", help="dataset layout: auto (detected from the folder), fma (tracks.csv + "
                            "fma_*/NNN/NNNNNN.mp3), folder (one folder per label) or manifest (a CSV of "
                            "path,label,...) (default: auto)")
    group.add_argument("--subset", default=None, help="FMA subset to use: small, medium or large (default: what DATA_DIR holds)")
    group.add_argument("--cache_dir", "--cache-dir", default=DEFAULT_CACHE_DIR, metavar="DIR", help=cache_help)


def load_dataset_from_args(args: argparse.Namespace, *, seed: int = 0):
    """:func:`melodex.datasets.load_dataset` with the options of :func:`add_dataset_arguments`."""
    from melodex.datasets import load_dataset

    return load_dataset(args.data_dir, metadata_dir=args.metadata_dir, kind=args.kind, subset=args.subset, seed=seed)


def open_store(path: str):
    """The :class:`~melodex.library.store.LibraryStore` at ``--store``, checked the same way for
    every command that reads one: a path that holds no store is one error naming it, with the
    store it probably meant when one is near. Left at its default (``melodex_outputs/library``)
    while that does not exist, it is the demo's store (``demo_outputs/library``) when that does,
    so the README's commands work right after ``melodex demo``."""
    import logging
    from pathlib import Path

    from melodex.errors import StoreError
    from melodex.library.store import LibraryStore

    def is_store(folder: Path) -> bool:
        return LibraryStore(folder).parts_dir.is_dir()

    root = Path(path)
    demo = Path(DEFAULT_DEMO_OUT) / "library"
    if path == DEFAULT_STORE and not root.exists() and is_store(demo):
        logging.getLogger(__name__).info("using the demo's library store at %s (--store picks another)", demo)
        root = demo
    if is_store(root):
        return LibraryStore(root)
    inside = sorted(c for c in root.iterdir() if c.is_dir()) if root.is_dir() else []
    near = [c for c in (root / "library", root / DEFAULT_STORE, root.parent, *inside) if c != root and is_store(c)]
    hint = f"did you mean --store {near[0]}?" if near else "create one with 'melodex index'"
    what = "no library store here" if root.is_dir() or not root.exists() else "a file, not a library store folder"
    raise StoreError(f"{path}: {what}; {hint}")
