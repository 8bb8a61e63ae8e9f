"""``melodex preprocess --engine ray``: the MFCC cache filled by Ray Data tasks.

:func:`extract_on_ray` is an ``extractor`` for
:func:`~melodex.training.preprocess.preprocess_dataset`: the jobs it is given (the tracks the
cache does not hold yet, worked out before the dataset is built) become a Ray dataset, each
CPU task runs :func:`~melodex.training.preprocess.extract_job` on its files (decode, MFCC, write
the ``.npy`` into the cache, which must sit on storage every node shares), and the outcomes come
back to the command, which keeps the cache's logs (``index.csv``, ``sources.csv``,
``failures.csv``) as the local engine does. A file that cannot be decoded is an outcome with its
reason, never a failed task. No model runs here, so there is no actor stage.
"""

from __future__ import annotations

import math
import pickle
from collections.abc import Iterator, Sequence

import pandas as pd
import ray

from melodex.engines.ray_engine import DECODE_CPUS, FILES_PER_BLOCK
from melodex.features.cache import FeatureCache
from melodex.training.preprocess import extract_job


def _extract_rows(batch: pd.DataFrame, cache_dir: str, config: dict) -> pd.DataFrame:
    """The task: each row's job extracted (the ``.npy`` written into the cache here, on the node);
    its outcome pickled (a frozen dataclass of plain values, no MFCC)."""
    done = [pickle.dumps(extract_job(pickle.loads(job), cache_dir, config)) for job in batch["job"]]
    return pd.DataFrame({"index": batch["index"], "done": done})


def extract_on_ray(jobs: Sequence, cache: FeatureCache, workers: int | None = None) -> Iterator:
    """Run ``jobs`` as Ray tasks on the connected cluster; yield each outcome as it arrives.

    ``workers`` is ignored: the cluster's CPUs decide (see ``melodex.engines.ray_engine.connect``)."""
    if not jobs:
        return
    cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
    blocks = min(len(jobs), max(2 * cpus, math.ceil(len(jobs) / FILES_PER_BLOCK)))
    # each row carries its own job, so a task holds its block's jobs, not the whole list
    items = [{"index": i, "job": pickle.dumps(job)} for i, job in enumerate(jobs)]
    dataset = ray.data.from_items(items, override_num_blocks=blocks)
    dataset = dataset.map_batches(_extract_rows, batch_format="pandas", batch_size=None, num_cpus=DECODE_CPUS,
                                  fn_kwargs={"cache_dir": str(cache.root), "config": cache.config.to_dict()})
    for batch in dataset.iter_batches(batch_format="pandas", batch_size=None):
        for blob in batch["done"]:
            yield pickle.loads(blob)  # written by extract_job in this run's own tasks
