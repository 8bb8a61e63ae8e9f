"""Self-supervised training on the music itself: ``melodex train --objective contrastive --audio DIR``.

No labels and no metadata are needed: any folders of audio will do. Two views of each track (two
windows of ``view_seconds`` cut at random offsets, each maybe augmented: :mod:`melodex.training.pairs`)
are a positive pair; every other view in the batch is a negative (with ``torchrun``, the views of
every process's batch: :meth:`~melodex.training.distributed.Group.gather_rows`). The loss is NT-Xent
(SimCLR's normalised temperature-scaled cross entropy; COLA and CLMR use it for audio) over the
cosine similarities of a small projection head's outputs, ``512 -> 512 -> projection_dim``.
Training views may be made harder on the device (:mod:`melodex.training.view_augment`): another clip
of the batch mixed in underneath (``mix``, a chance) and SpecAugment-style masks (``spec_mask``, a width).
With a ``cache_dir``, the MFCC of every file the cache lacks is computed first (as ``melodex
preprocess`` does), so each file is decoded once; the views are then read from the cache.

What is kept where:

- ``model_weights.pth``: the CNN backbone and its 512-d embedding, *headless* (no genre head, an
  empty label list); every command that takes ``--model`` embeds with it;
- ``train_state.pth``: that model, the projection head (``"projector"``) and the optimiser, for
  ``--resume``; the projection head serves only the loss, so it is not in the checkpoint;
- ``history.csv``: the usual columns; ``train_accuracy``/``val_accuracy`` are the pair accuracy,
  the share of views whose most similar other view in the batch is their own pair;
- ``retrieval_report.txt`` (instead of a classification report): for the validation tracks, the share
  of each track's 10 nearest neighbours by the same artist (and album), beside chance and beside
  MFCC statistics of the same tracks; it needs artist metadata (tags, FMA metadata or a manifest).

With ``keep`` ``"best"`` (the default) the best epoch on validation (pair accuracy, then the lower
loss) is kept, as for supervised runs; with ``"last"`` the last epoch is, as SimCLR keeps it (the pair
accuracy of a few validation clips saturates early and says little about the embedding); ``--patience``
then never stops a run. With ``segments`` above 1, training views are drawn from up to that many 30-s
segments of each track (:mod:`melodex.training.segment_bank`), not only from its first.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from melodex.datasets.base import Dataset, Track
from melodex.errors import CacheMismatchError, DatasetError
from melodex.features.stats import StatsScaler, mfcc_stats
from melodex.model.checkpoint import WEIGHTS_NAME, load_checkpoint
from melodex.training.augment import CONTRASTIVE_AUGMENT, AugmentConfig
from melodex.training.config import TrainConfig, TrainResult
from melodex.training.distributed import Group, from_environment
from melodex.training.pairs import PairViews, audio_dataset, pair_loader, view_frames
from melodex.training.preprocess import preprocess_dataset
from melodex.training.runs import PARAMS_NAME, RETRIEVAL_REPORT_NAME, read_json, resolve_run_dir, write_json
from melodex.training.runtime import epoch_seed, json_number
from melodex.training.segment_bank import SegmentBank
from melodex.training.trainer import Best, Trainer
from melodex.training.view_augment import mask_views, mix_views
from melodex.util.atomic import atomic_write
from melodex.util.workers import usable_cores

log = logging.getLogger(__name__)

# (config, validation tracks, {name: vectors}) -> (report text, scores for params.json); given by the command
Retrieval = Callable[[TrainConfig, list[Track], dict[str, np.ndarray]], tuple[str, dict[str, Any]]]
VALIDATION_EPOCH = 0  # validation pairs are drawn as for this epoch, so every epoch scores the same pairs


class PairNet(nn.Module):
    """The CNN's embedding followed by the projection head; ``(a, b)`` views -> unit vectors ``(z_a, z_b)``."""

    def __init__(self, model: nn.Module, projection_dim: int):
        super().__init__()
        dim = model.config.embedding_dim
        self.model = model
        self.projector = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(inplace=True), nn.Linear(dim, projection_dim))

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = F.normalize(self.projector(self.model.embed(torch.cat([a, b]))), dim=1)
        return z[: len(a)], z[len(a):]


def nt_xent(z_a: torch.Tensor, z_b: torch.Tensor, temperature: float,
            group: Group | None = None) -> tuple[torch.Tensor, int, int]:
    """NT-Xent loss of the pairs ``(z_a[i], z_b[i])`` [shape=(n, d), unit rows], how many of the
    ``2n`` views have their own pair as the most similar other view, and how many negatives each
    view was scored against.

    Each view is scored against every other view (with a ``group`` of processes, every process's
    views: the negatives are gathered, with their gradients). The mean is over this process's views.
    """
    n = z_a.shape[0]
    keys_a, offset = group.gather_rows(z_a) if group is not None else (z_a, 0)
    keys_b, _ = group.gather_rows(z_b) if group is not None else (z_b, 0)
    total = keys_a.shape[0]
    logits = torch.cat([z_a, z_b]) @ torch.cat([keys_a, keys_b]).T / temperature
    mine = torch.arange(n, device=z_a.device) + offset
    itself = torch.cat([mine, mine + total])
    positive = torch.cat([mine + total, mine])
    logits = logits.masked_fill(F.one_hot(itself, 2 * total).bool(), float("-inf"))
    loss = F.cross_entropy(logits, positive, reduction="sum") / max(1, 2 * n)
    return loss, int((logits.argmax(1) == positive).sum()) if n else 0, 2 * total - 2


class ContrastiveTrainer(Trainer):
    """A :class:`~melodex.training.trainer.Trainer` whose objective is NT-Xent over pairs of views."""

    retrieval: Retrieval | None = None

    def __init__(self, config: TrainConfig, device: torch.device, dataset: Dataset, run_dir: Path | None,
                 group: Group | None = None):
        super().__init__(config, device, dataset, run_dir, group)
        self.frames = view_frames(self.features, config.view_seconds)
        self.negatives = 0  # the most negatives a view met in a training step (all processes' views)
        self.segments: SegmentBank | None = None
        self.segment_counts: dict[str, float] = {}
        self.pair_net = PairNet(self.model, config.projection_dim).to(device)
        self.optimizer = torch.optim.Adam(self.pair_net.parameters(), lr=config.lr, weight_decay=config.weight_decay)

    @staticmethod
    def load_dataset(config: TrainConfig) -> Dataset:
        return audio_dataset(config.audio, seed=config.seed)

    def default_augment(self) -> AugmentConfig:
        """Contrastive runs keep the augmentation they were measured with (no warm-up, ``prob`` 0.7)."""
        return CONTRASTIVE_AUGMENT

    def _prepare_augmentation(self, settings: AugmentConfig | None = None) -> None:
        """The augmented variants, and with ``config.segments`` above 1 the training tracks' further segments."""
        super()._prepare_augmentation(settings)
        if self.config.segments > 1:
            self.segments = SegmentBank.beside(self.config.cache_dir, self.features, self.config.segments)
            workers = self.config.num_workers if self.config.num_workers is not None else max(
                1, min(4, usable_cores() // self.group.local_world_size))  # as for the variants: a worker per core
            self.segment_counts = self.group.on_main(self.segments.fill, self.data["training"].tracks,
                                                     num_workers=workers, progress=self.config.progress)
            if self.segments.temporary and self.group.active:  # a scratch bank is rank 0's alone
                self.segments.fill(self.data["training"].tracks, num_workers=workers, progress=False)

    def trained_module(self) -> nn.Module:
        return self.pair_net

    def extra_state(self) -> dict[str, Any]:
        return {"projector": {k: v.detach().cpu() for k, v in self.pair_net.projector.state_dict().items()}}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self.pair_net.projector.load_state_dict(state["projector"])

    def _views(self, split: str, epoch: int) -> PairViews:
        training = split == "training" and self.bank is not None
        augment = self.bank.augment if training else None
        return PairViews(self.data[split], self.bank if training else None, frames=self.frames, seed=self.config.seed,
                         epoch=epoch, prob=augment.prob if augment else 0.0, gain_db=augment.gain_db if augment else 0.0,
                         segments=self.segments if split == "training" else None)

    # -- the run -----------------------------------------------------------------------------
    def _train_epoch(self, epoch: int) -> tuple[float, float]:
        cfg = self.config
        order = self.group.order(len(self.data["training"]), seed=cfg.seed, epoch=epoch)
        torch.manual_seed(epoch_seed(cfg.seed, epoch) + self.group.rank)
        loader = pair_loader(self._views("training", epoch), order, batch_size=cfg.batch_size,
                             num_workers=self.num_workers, seed=epoch_seed(cfg.seed, epoch),
                             pin_memory=self.device.type == "cuda")
        self.pair_net.train()
        bar = tqdm(loader, total=math.ceil(len(order) / cfg.batch_size), desc=f"epoch {epoch}/{cfg.epochs}",
                   unit="batch", leave=False, disable=None if cfg.progress else True, dynamic_ncols=True)
        with self.group.join(self.net):
            loss_sum, correct, seen = self._pair_steps(bar)
        loss_sum, correct, seen = self.group.sum(loss_sum, correct, seen)
        self.group.share_failures(self.failures["training"])
        if not seen:
            raise DatasetError(f"{', '.join(cfg.audio)}: no training track could be loaded")
        if cfg.keep == "last":
            self.best = Best()  # so that the epoch just trained is the one kept (and patience never runs out)
        return loss_sum / seen, correct / seen

    def _augment(self, views: torch.Tensor) -> torch.Tensor:
        """A training batch of views, mixed and masked as ``config.mix`` and ``config.spec_mask`` say."""
        views = mix_views(views, self.config.mix, self.features)
        return mask_views(views, self.model.feature_mean, self.config.spec_mask)

    def _pair_steps(self, bar) -> tuple[float, int, int]:
        loss_sum, correct, seen = 0.0, 0, 0
        for batch in bar:
            self.failures["training"].note(batch)
            if not len(batch) and not self.group.active:  # under torchrun every rank takes every step
                continue
            a, b = (self._augment(v.to(self.device, non_blocking=True)) for v in (batch.a, batch.b))
            self.optimizer.zero_grad(set_to_none=True)
            z_a, z_b = self.net(a, b)
            loss, hits, negatives = nt_xent(z_a, z_b, self.config.temperature, self.group)
            self.negatives = max(self.negatives, negatives)
            loss.backward()
            self.optimizer.step()
            loss_sum += float(loss.detach()) * 2 * len(batch)
            correct += hits
            seen += 2 * len(batch)
            bar.set_postfix(loss=f"{loss_sum / max(seen, 1):.3f}", pairs=f"{correct / max(seen, 1):.3f}", refresh=False)
        return loss_sum, correct, seen

    @torch.no_grad()
    def evaluate(self, split: str) -> tuple[float, float, list[int], list[int]]:
        """Mean NT-Xent loss and pair accuracy on ``split``'s fixed pairs, batch by batch (NaN when empty)."""
        self.pair_net.eval()
        loader = pair_loader(self._views(split, VALIDATION_EPOCH), range(len(self.data[split])),
                             batch_size=self.config.batch_size, num_workers=self.num_workers)
        loss_sum, correct, seen = 0.0, 0, 0
        for batch in loader:
            self.failures[split].note(batch)
            if len(batch):
                z_a, z_b = self.pair_net(batch.a.to(self.device), batch.b.to(self.device))
                loss, hits, _ = nt_xent(z_a, z_b, self.config.temperature)
                loss_sum, correct, seen = loss_sum + float(loss) * 2 * len(batch), correct + hits, seen + 2 * len(batch)
        return (loss_sum / seen, correct / seen, [], []) if seen else (math.nan, math.nan, [], [])

    @torch.no_grad()
    def embed_split(self, split: str) -> tuple[list[Track], dict[str, np.ndarray]]:
        """The tracks of ``split`` that load, with the model's embeddings of their whole first segment
        (as ``infer`` and ``index`` make them) and their standardised MFCC statistics."""
        self.model.eval()
        tracks, embeddings, stats = [], [], []
        for batch in self._loader(split):
            self.failures[split].note(batch)
            if len(batch):
                embeddings.append(self.model.embed(batch.x.to(self.device)).cpu().numpy())
                stats.append(mfcc_stats(batch.x.numpy()))
                tracks += [self.data[split].tracks[i] for i in batch.indices.tolist()]
        if not tracks:
            return [], {}
        stats_x = np.concatenate(stats)
        return tracks, {"contrastive": np.concatenate(embeddings),
                        "mfcc-stats": StatsScaler.fit(stats_x).transform(stats_x)}

    def _finish(self) -> TrainResult:
        best = load_checkpoint(self.run_dir / WEIGHTS_NAME)
        self.model.load_state_dict(best.state_dict)
        tracks, vectors = self.embed_split("validation")
        if self.retrieval is not None and tracks:
            report, scores = self.retrieval(self.config, tracks, vectors)
        else:
            report, scores = "No validation tracks to score retrieval on.\n", {}
        with atomic_write(self.run_dir / RETRIEVAL_REPORT_NAME, "w", encoding="utf-8") as handle:
            handle.write(f"Melodex contrastive run {self.run_dir.name}: retrieval on {len(tracks)} validation "
                         f"tracks ({self.config.keep} epoch {self.best.epoch})\n{report}")
        params = read_json(self.run_dir / PARAMS_NAME)
        params["result"] = {
            "best_epoch": self.best.epoch, "best_val_accuracy": json_number(self.best.val_accuracy),
            "best_val_loss": json_number(self.best.val_loss), "epochs_run": self.last_epoch(),
            "kept": self.config.keep,
            "stopped_early": self.stopped_early, "retrieval": scores, "negatives_per_view": self.negatives,
            "failed_files": {s: sorted(f.reasons.values()) for s, f in self.failures.items() if f.reasons},
        }
        write_json(self.run_dir / PARAMS_NAME, params)
        log.info("retrieval report in %s", self.run_dir / RETRIEVAL_REPORT_NAME)
        return TrainResult(self.run_dir, self.best.epoch, self.best.val_accuracy, math.nan, self.last_epoch(),
                           self.stopped_early, report)

    def params(self) -> dict[str, Any]:
        params = super().params()
        for name in ("data_dir", "kind", "subset"):  # supervised training's dataset options, unused here
            params["hyperparameters"].pop(name)
            params["dataset"].pop(name)
        params["hyperparameters"].update(loss="nt_xent", view_frames=self.frames)
        params["objective"] = {"name": "contrastive", "temperature": self.config.temperature,
                               "view_seconds": self.config.view_seconds, "view_frames": self.frames,
                               "spec_mask": self.config.spec_mask, "mix": self.config.mix,
                               "keep": self.config.keep, "segments": self.config.segments,
                               "segment_bank": None if self.segments is None else {
                                   "dir": None if self.segments.temporary else os.path.abspath(self.segments.root),
                                   **self.segment_counts},
                               "projection": [self.model.config.embedding_dim] * 2 + [self.config.projection_dim],
                               "negatives": "every other view in the batch, gathered across processes"}
        return params


def objective_of(config: TrainConfig) -> str:
    """The objective ``config`` trains with: its own, or with ``--resume`` the run's (where it can be read)."""
    if config.resume is None:
        return config.objective
    try:
        saved = read_json(resolve_run_dir(config.resume, config.output_dir) / PARAMS_NAME)
    except Exception:  # noqa: BLE001 (the resume itself reports an unreadable run, in one line)
        return config.objective
    return saved.get("hyperparameters", {}).get("objective", "supervised")


def fill_cache(config: TrainConfig) -> None:
    """Put the MFCC of every file under ``config.audio`` that the cache lacks into ``config.cache_dir``
    first (``melodex preprocess`` for any folder): each file is decoded once, not every epoch."""
    dataset = audio_dataset(config.audio, seed=config.seed)
    try:
        summary = preprocess_dataset(dataset, config.cache_dir, workers=config.num_workers or None,
                                     progress=config.progress)
    except CacheMismatchError as exc:
        log.warning("not filling the MFCC cache: %s", exc)
        return
    if summary.written:
        log.info("MFCC cache %s: %d file(s) added (%d failed)", config.cache_dir, summary.written,
                 len(summary.failures))


def train_contrastive(config: TrainConfig, retrieval: Retrieval | None = None) -> TrainResult:
    """Train (or resume) a contrastive run as ``config`` says; ``retrieval`` scores the validation
    embeddings for the report (the command passes :mod:`melodex.analysis.retrieval`'s, which
    training itself may not import)."""
    group = from_environment()
    with group.session(config.device) as device:
        config = config if group.is_main else replace(config, progress=False)
        if config.resume is None and config.cache_dir is not None and config.audio:
            group.on_main(fill_cache, config)  # the other ranks wait: they read what rank 0 wrote
        cls = ContrastiveTrainer
        trainer = cls.resume(config, device, group) if config.resume is not None else cls.start(config, device, group)
        trainer.retrieval = retrieval
        return trainer.fit()
