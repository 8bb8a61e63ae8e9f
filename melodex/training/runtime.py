"""What every training loop shares: seeds, the library versions a run records, worker counts, JSON numbers."""

from __future__ import annotations

import math
import platform
import random

import numpy as np
import sklearn
import torch

from melodex import __version__
from melodex.util.workers import usable_cores


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed of ``epoch`` of a run seeded ``seed``: its shuffle, views and dropout draws."""
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def library_versions() -> dict[str, str]:
    return {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__,
            "scikit-learn": sklearn.__version__, "melodex": __version__, "platform": platform.platform()}


def default_num_workers(cached_fraction: float, processes: int = 1) -> int:
    """DataLoader workers for one of ``processes`` training processes on this machine (0: all cached)."""
    if cached_fraction >= 1.0:
        return 0
    return max(1, min(4, usable_cores() // processes - 1))


def json_number(value: float) -> float | None:
    """A float for JSON: NaN (an empty split) becomes None."""
    return None if value is None or math.isnan(value) else float(value)
