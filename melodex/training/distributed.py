"""Training across processes and machines: torch's DistributedDataParallel under ``torchrun``.

``torchrun --nproc_per_node N train.py ...`` (or ``torchrun ... -m melodex train ...``) starts N
copies of the command with ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` set; :func:`from_environment`
reads them, and :meth:`Group.session` joins the process group (gloo on the CPU, nccl on CUDA,
one GPU per process: ``cuda:LOCAL_RANK``). Without torchrun, or with one process, every method
here is the identity and training is exactly the single-process run.

Who does what in a group of N:

- every rank loads the dataset, computes the same normalisation statistics and trains on its
  share of the training split (a ``DistributedSampler`` reshuffled per epoch with ``set_epoch``);
  DDP averages the gradients, so the N models stay equal; the training loss and accuracy in
  ``history.csv`` are summed over the ranks;
- rank 0 alone creates the run directory and writes every file in it (``params.json``,
  ``history.csv``, the checkpoints, the report) and ``latest``; with ``--resume`` it alone reads
  the run and broadcasts what it read, so the run directory need only exist where rank 0 runs;
- rank 0 alone evaluates the validation and test splits, on the whole split, and broadcasts the
  numbers. Why not a sharded evaluation with an all-reduce: the ``DistributedSampler`` pads the
  shards with repeated tracks, the report needs every (true, predicted) pair and every file that
  failed, and the result is then exactly what one process reports for the same weights. The
  cost is small: evaluation is forward-only on the validation split (~10% of the tracks), and the
  other ranks wait for it at the next collective;
- augmentation variants are made by all ranks at once, each its share, and written atomically
  (a unique temporary name moved over the entry); a variant depends on the track alone, so two
  ranks writing the same entry write the same bytes. Then each rank fills what it still lacks:
  nothing on a shared disk, the others' share where the cache is per machine or there is none (each
  rank's scratch folder).

Ranks other than 0 log errors only and show no progress bars.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.distributed.algorithms.join import Join
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data.distributed import DistributedSampler

from melodex.datasets.base import Track
from melodex.errors import DeviceError, DistributedError, MelodexError
from melodex.training.data import FailureLog
from melodex.training.variants import VariantBank
from melodex.util.device import resolve_device

log = logging.getLogger(__name__)

T = TypeVar("T")
# Rank 0 may evaluate a large validation split while the others wait at the next collective.
TIMEOUT = datetime.timedelta(hours=2)


class Group:
    """This process's place among the training processes (rank 0 of 1 without torchrun)."""

    def __init__(self, rank: int = 0, world_size: int = 1, local_rank: int = 0, local_world_size: int = 1):
        self.rank, self.world_size, self.local_rank = rank, world_size, local_rank
        self.local_world_size = local_world_size  # processes on this machine, sharing its cores
        self.device = torch.device("cpu")

    @property
    def active(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def __repr__(self) -> str:
        return f"Group(rank={self.rank}, world_size={self.world_size}, local_rank={self.local_rank})"

    @contextlib.contextmanager
    def session(self, device_name: str | None) -> Iterator[torch.device]:
        """Join the process group for the duration; yields this rank's device."""
        device = resolve_device(device_name)
        if not self.active:
            self.device = device
            yield device
            return
        if device.type == "cuda":
            if self.local_rank >= torch.cuda.device_count():
                raise DeviceError(f"LOCAL_RANK {self.local_rank}: this machine has {torch.cuda.device_count()} "
                                  "CUDA GPU(s); start at most that many processes per node (--nproc_per_node)")
            device = torch.device("cuda", self.local_rank)
            torch.cuda.set_device(device)
        self.device = device
        backend = "nccl" if device.type == "cuda" else "gloo"
        try:
            dist.init_process_group(backend, rank=self.rank, world_size=self.world_size, timeout=TIMEOUT,
                                    device_id=device if device.type == "cuda" else None)
        except (RuntimeError, ValueError) as exc:
            raise DistributedError(f"rank {self.rank}: cannot join the {backend} process group ({exc})") from None
        if not self.is_main:  # for the rest of the process: its last lines too would repeat rank 0's
            logging.getLogger("melodex").setLevel(logging.ERROR)
        log.info("training in %d processes (%s, %s per process)", self.world_size, backend, device.type)
        try:
            yield device
        finally:
            with contextlib.suppress(RuntimeError, ValueError):
                dist.destroy_process_group()

    # -- collectives, each the identity in one process ------------------------------------
    def on_main(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``fn(*args, **kwargs)`` run on rank 0 and broadcast to every rank.

        A :class:`MelodexError` there stops every rank: rank 0 raises it, the others a
        :class:`DistributedError` with its message (so no rank waits forever).
        """
        if not self.active:
            return fn(*args, **kwargs)
        payload: list[Any] = [None]
        error: BaseException | None = None
        if self.is_main:
            try:
                payload[0] = ("ok", fn(*args, **kwargs))
            except Exception as exc:  # noqa: BLE001 (re-raised below, after the others are told)
                error = exc
                payload[0] = ("error", str(exc) if isinstance(exc, MelodexError) else f"{type(exc).__name__}: {exc}")
        dist.broadcast_object_list(payload, src=0)
        status, value = payload[0]
        if error is not None:
            raise error
        if status == "error":
            raise DistributedError(f"rank {self.rank} stops: rank 0 failed ({value})")
        return value

    def sum(self, *values: float) -> list[float]:
        """Each value summed over the ranks."""
        if not self.active:
            return list(values)
        tensor = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor.tolist()

    def gather_rows(self, rows: torch.Tensor) -> tuple[torch.Tensor, int]:
        """Every rank's ``rows`` [shape=(n_r, d)] stacked in rank order, with the gradient flowing back
        to each rank's own rows, and where this rank's rows start (contrastive negatives). Ranks may
        hold different numbers of rows (a file that failed): they are padded for the exchange."""
        if not self.active:
            return rows, 0
        count = torch.tensor([rows.shape[0]], dtype=torch.long, device=rows.device)
        counts = [torch.zeros_like(count) for _ in range(self.world_size)]
        dist.all_gather(counts, count)
        sizes = [int(c) for c in counts]
        padded = F.pad(rows, (0, 0, 0, max(sizes) - rows.shape[0]))
        parts = _GatherWithGradient.apply(padded)
        return torch.cat([part[:size] for part, size in zip(parts, sizes)]), sum(sizes[: self.rank])

    def join(self, net: torch.nn.Module) -> contextlib.AbstractContextManager:
        """Around an epoch's steps: DDP's ``Join``, so a rank with fewer steps (a batch of files
        that all failed is skipped) shadows the others' collectives instead of hanging them."""
        return Join([net]) if self.active else contextlib.nullcontext()

    def barrier(self) -> None:
        if self.active:
            dist.barrier()

    # -- training ------------------------------------------------------------------------
    def order(self, n: int, *, seed: int, epoch: int) -> list[int]:
        """The indices of the training split this rank visits in ``epoch``.

        One process: a permutation drawn from ``(seed, epoch)``, as always. N processes: this
        rank's share from a ``DistributedSampler`` (seeded with ``seed``, ``set_epoch(epoch)``);
        the shares are padded to one length so every rank takes the same number of steps.
        """
        if not self.active:
            return np.random.default_rng([seed, epoch]).permutation(n).tolist()
        sampler = DistributedSampler(range(n), num_replicas=self.world_size, rank=self.rank, shuffle=True, seed=seed)
        sampler.set_epoch(epoch)
        return list(sampler)

    def wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        """The module to train with: ``model`` itself, or ``model`` in DDP (which broadcasts rank 0's
        parameters and buffers now and averages gradients in every backward pass)."""
        if not self.active:
            return model
        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids)

    def fill_bank(self, bank: VariantBank, tracks: Sequence[Track], *, num_workers: int,
                  progress: bool) -> dict[str, float]:
        """:meth:`VariantBank.fill` shared among the ranks; returns the whole group's counts (and this
        rank's seconds)."""
        if not self.active:
            return bank.fill(tracks, num_workers=num_workers, progress=progress)
        bank_log = logging.getLogger(VariantBank.__module__)
        level = bank_log.level
        bank_log.setLevel(logging.WARNING)  # one line for the whole group, below
        try:
            mine = bank.fill(list(tracks)[self.rank::self.world_size], num_workers=num_workers, progress=progress)
            made, kept, failed = (int(v) for v in self.sum(mine["made"], mine["kept"], mine["failed"]))
            self.barrier()
            bank.fill(tracks, num_workers=num_workers, progress=False)  # the others' share, where not shared
        finally:
            bank_log.setLevel(level)
        counts = {"clips": len(tracks), "made": made, "kept": kept, "failed": failed, "seconds": mine["seconds"]}
        log.info("augmentation: variants of %(clips)d training clips (%(made)d made now by the %(ranks)d processes, "
                 "%(kept)d kept from before, %(failed)d not decodable: those train clean)",
                 dict(counts, ranks=self.world_size))
        return counts

    def share_failures(self, failures: FailureLog) -> None:
        """Give every rank's :class:`FailureLog` the files any rank could not load; rank 0 warns
        once for each (the others log errors only), and its ``params.json`` lists them all."""
        if not self.active:
            return
        everyone: list[dict[str, str] | None] = [None] * self.world_size
        dist.all_gather_object(everyone, failures.reasons)
        for reasons in everyone:
            for key, reason in (reasons or {}).items():
                if key not in failures.reasons:
                    failures.reasons[key] = reason
                    log.warning("skipping a file that cannot be loaded: %s", reason)


class _GatherWithGradient(torch.autograd.Function):
    """``all_gather`` whose backward hands each rank the gradient of its own rows, summed over every
    rank's loss (an all-reduce, which gloo and nccl both have), as SimCLR's multi-GPU training does."""

    @staticmethod
    def forward(ctx, rows: torch.Tensor) -> tuple[torch.Tensor, ...]:
        parts = [torch.empty_like(rows) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, rows.contiguous())
        return tuple(parts)

    @staticmethod
    def backward(ctx, *grads: torch.Tensor) -> torch.Tensor:
        summed = torch.stack(grads).contiguous()
        dist.all_reduce(summed, op=dist.ReduceOp.SUM)
        return summed[dist.get_rank()]


def from_environment(environ: dict[str, str] | None = None) -> Group:
    """The group ``torchrun`` describes in ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``; one process without them."""
    env = os.environ if environ is None else environ
    try:
        world_size = int(env.get("WORLD_SIZE", "1"))
        rank = int(env.get("RANK", "0"))
        local_rank = int(env.get("LOCAL_RANK", str(rank)))
        local_world_size = int(env.get("LOCAL_WORLD_SIZE", str(world_size)))
    except ValueError as exc:
        raise DistributedError(f"the torchrun environment is not understood ({exc})") from None
    if world_size < 1 or not 0 <= rank < world_size:
        raise DistributedError(f"RANK {rank} with WORLD_SIZE {world_size}: no such process")
    return Group(rank, world_size, local_rank, max(1, local_world_size))
