"""The training loop behind :func:`melodex.training.trainer.train`: epochs, validation, checkpoints, resume.

Repeatability: the weights are initialised from ``seed``; epoch ``e`` shuffles the training
split with a generator seeded from ``(seed, e)`` and reseeds torch's global RNG (dropout) from
the same pair. So epoch ``e`` does the same work whether the run went straight through or was
resumed from the state saved after epoch ``e - 1``, and two CPU runs with one seed give the
same weights.

Order of writes after each epoch: ``model_weights.pth`` (when validation improved), a line in
``history.csv``, then ``train_state.pth``; all atomic, so a kill at any point resumes cleanly.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import shlex
import time
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from tqdm import tqdm

from melodex.datasets import load_dataset
from melodex.datasets.base import SPLITS, Dataset
from melodex.errors import DatasetError, ResumeError
from melodex.features.mfcc import DEFAULT_FEATURES
from melodex.model.checkpoint import WEIGHTS_NAME, load_checkpoint, save_checkpoint
from melodex.model.cnn import GenreCNN, ModelConfig, place_model
from melodex.training import runtime
from melodex.training.augment import DEFAULT_AUGMENT, AugmentConfig
from melodex.training.config import TrainConfig, TrainResult, check_settings, epochs_for, settings_for_resume
from melodex.training.data import FailureLog, MfccDataset, feature_statistics, make_loader, open_cache
from melodex.training.distributed import Group, from_environment
from melodex.training.runs import (
    PARAMS_NAME,
    REPORT_NAME,
    RETRIEVAL_REPORT_NAME,
    STATE_FORMAT,
    STATE_NAME,
    format_report,
    new_run_dir,
    open_history,
    point_latest,
    read_json,
    read_state,
    resolve_run_dir,
    write_json,
)
from melodex.training.runtime import epoch_seed, json_number
from melodex.training.variants import AugmentedView, VariantBank, clean_batchnorm
from melodex.training.warmstart import start_from
from melodex.util.atomic import atomic_write
from melodex.util.workers import usable_cores

log = logging.getLogger("melodex.training.trainer")


@dataclass
class Best:
    epoch: int = 0
    val_accuracy: float = -math.inf
    val_loss: float = math.inf
    since: int = 0  # epochs since the best one

    def improves(self, accuracy: float, loss: float) -> bool:
        """Higher validation accuracy wins; a tie goes to the lower loss. No validation: always."""
        if math.isnan(accuracy):
            return True
        return accuracy > self.val_accuracy or (accuracy == self.val_accuracy and loss < self.val_loss)


class Trainer:
    """One run: its data, model, optimizer and where it stands. Build with :meth:`start` or :meth:`resume`."""

    def __init__(self, config: TrainConfig, device: torch.device, dataset: Dataset, run_dir: Path | None,
                 group: Group | None = None):
        self.config, self.group = config, group or Group()
        self.device = device
        self.dataset = dataset
        self.run_dir = run_dir
        self.labels = list(dataset.labels)
        self.features = DEFAULT_FEATURES
        index = dataset.label_index()
        # a dataset without labels (self-supervised training) keeps every track of a split
        usable = [t for t in dataset.tracks if (t.label in index or not index) and t.split in SPLITS]
        if len(usable) < len(dataset.tracks):
            log.warning("%d tracks have no label or no split and are left out", len(dataset.tracks) - len(usable))
        cache = open_cache(config.cache_dir, self.features)
        self.data = {s: MfccDataset([t for t in usable if t.split == s], index, self.features, cache) for s in SPLITS}
        self.failures = {s: FailureLog(d) for s, d in self.data.items()}
        if not len(self.data["training"]):
            raise DatasetError(f"{config.data_dir}: the dataset has no training tracks")
        if not len(self.data["validation"]):
            log.warning("the dataset has no validation tracks: the last epoch's model is kept")
        self.cached_fraction = sum(d.cached_fraction() * len(d) for d in self.data.values()) / len(usable)
        if cache is not None:
            log.info("MFCC cache %s holds %.0f%% of the tracks", cache.root, 100 * self.cached_fraction)
        self.num_workers = (config.num_workers if config.num_workers is not None
                            else runtime.default_num_workers(self.cached_fraction, self.group.local_world_size))
        runtime.seed_everything(config.seed)
        self.model = self.net = place_model(GenreCNN(ModelConfig(n_classes=len(self.labels))), device)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        self.start_epoch = 1
        self.best = Best()
        self.stopped_early = False
        self.bank: VariantBank | None = None
        self.bank_counts: dict[str, int] = {}

    # -- construction ----------------------------------------------------------------------
    @classmethod
    def start(cls, config: TrainConfig, device: torch.device, group: Group | None = None) -> Trainer:
        check_settings(config)
        dataset = cls.load_dataset(config)
        trainer = cls(config, device, dataset, None, group)
        epochs = config.epochs or epochs_for(config.objective, trainer.dataset_size("training"))  # None: default
        trainer.config = config = replace(config, epochs=epochs)
        log.info("tracks: %s; epochs: %d", ", ".join(f"{s} {trainer.dataset_size(s)}" for s in SPLITS), epochs)
        trainer._normalise()
        if config.init_from is not None:
            start_from(trainer.model, config.init_from)
        trainer._prepare_augmentation()
        # The run directory appears once the data is known to be usable; rank 0 alone makes it.
        trainer.run_dir = trainer.group.on_main(trainer._new_run)
        return trainer

    def _new_run(self) -> Path:
        run_dir = self.run_dir = new_run_dir(self.config.output_dir)
        point_latest(run_dir)
        log.info("run %s", run_dir.name)
        write_json(run_dir / PARAMS_NAME, self.params())
        return run_dir

    @classmethod
    def resume(cls, config: TrainConfig, device: torch.device, group: Group | None = None) -> Trainer:
        group = group or Group()  # rank 0 reads the run; every rank loads what it read
        run_dir, params, state, reported = group.on_main(_read_run, config)
        config = settings_for_resume(config, params)
        check_settings(config)
        dataset = cls.load_dataset(config)
        if list(dataset.labels) != list(params.get("labels", [])):
            raise ResumeError(f"{run_dir}: the dataset's labels {dataset.labels} differ from the run's "
                              f"{params.get('labels')}")
        trainer = cls(config, device, dataset, run_dir, group)
        trainer._prepare_augmentation(AugmentConfig.recorded(params.get("augmentation", {})))
        if state is None:  # stopped before its first epoch ended: start it again, in the same place
            log.info("run %s stopped before its first epoch ended; starting it again", run_dir.name)
            trainer._normalise()
            return trainer
        trainer.model.load_state_dict(state["model"])
        trainer.optimizer.load_state_dict(state["optimizer"])
        trainer.load_extra_state(state)
        done = int(state["epoch"])
        trainer.start_epoch = done + 1
        trainer.best = Best(int(state["best_epoch"]), float(state["best_val_accuracy"]),
                            float(state["best_val_loss"]), int(state["since"]))
        trainer.stopped_early = bool(state.get("stopped_early", False))
        planned = int(params["hyperparameters"]["epochs"])
        finished = done >= config.epochs or (trainer.stopped_early and config.epochs <= planned)
        if finished and reported:
            raise ResumeError(f"{run_dir}: the run has finished ({done} epochs); "
                              f"pass --epochs N with N > {done} to train it further")
        if not finished:
            trainer.stopped_early = False
            params["hyperparameters"]["epochs"] = config.epochs
            if group.is_main:
                write_json(run_dir / PARAMS_NAME, params)
        log.info("resuming run %s after epoch %d of %d", run_dir.name, done, config.epochs)
        return trainer

    # -- what a subclass (another objective) replaces -------------------------------------------
    @staticmethod
    def load_dataset(config: TrainConfig) -> Dataset:
        return _load(config)

    def trained_module(self) -> torch.nn.Module:
        """Every module the optimiser trains (DDP wraps it): the model, for a supervised run."""
        return self.model

    def extra_state(self) -> dict[str, Any]:
        """More to keep in ``train_state.pth`` for a resume (plain tensors and numbers)."""
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        """Take back what :meth:`extra_state` saved."""

    def _normalise(self) -> None:
        """Set the model's per-coefficient mean and std from the training split."""
        try:
            mean, std = feature_statistics(self._loader("training"), self.failures["training"],
                                           progress=self.config.progress)
        except ValueError as exc:
            raise DatasetError(f"{self.config.data_dir}: {exc}") from None
        self.model.set_normalization(mean, std)

    def default_augment(self) -> AugmentConfig:
        """The augmentation of a new run (:data:`~melodex.training.augment.DEFAULT_AUGMENT` for a genre run)."""
        return DEFAULT_AUGMENT

    def _prepare_augmentation(self, settings: AugmentConfig | None = None) -> None:
        """With ``config.augment``, the clips' variants (made once) for ``settings`` or :meth:`default_augment`."""
        if self.config.augment:
            workers = self.config.num_workers if self.config.num_workers is not None else max(  # the main process
                1, min(4, usable_cores() // self.group.local_world_size))  # only writes: a worker per core
            self.bank = VariantBank.beside(self.config.cache_dir, self.features, settings or self.default_augment())
            self.bank_counts = self.group.fill_bank(self.bank, self.data["training"].tracks, num_workers=workers,
                                                    progress=self.config.progress)

    # -- the run -----------------------------------------------------------------------------
    def fit(self) -> TrainResult:
        self.net = self.group.wrap(self.trained_module())
        try:
            self._epochs()
        except KeyboardInterrupt:
            log.warning("interrupted; continue with: melodex train --resume %s", shlex.quote(str(self.run_dir)))
            raise
        return self.group.on_main(self._finish)  # rank 0 tests and reports

    def _epochs(self) -> None:
        cfg = self.config
        history = open_history(self.run_dir, keep_epochs=self.start_epoch - 1) if self.group.is_main else None
        with history or contextlib.nullcontext():
            for epoch in range(self.start_epoch, cfg.epochs + 1):
                if self.stopped_early:
                    break
                started = time.perf_counter()
                train_loss, train_acc = self._train_epoch(epoch)
                val_loss, val_acc = self.group.on_main(lambda: self.evaluate("validation")[:2])
                if self.bank is not None and epoch == self.bank.augment.clean_epochs + 1 > 1:
                    self.best = Best()  # the model kept is one trained with augmentation, not from the warm-up
                better = self.best.improves(val_acc, val_loss)
                if better:
                    self.best = Best(epoch, val_acc, val_loss, 0)
                    self._save_weights(epoch, val_acc, val_loss, train_acc)
                else:
                    self.best.since += 1
                seconds = time.perf_counter() - started
                if history is not None:
                    history.append(epoch, f"{train_loss:.6f}", f"{train_acc:.6f}", f"{val_loss:.6f}",
                                   f"{val_acc:.6f}", f"{seconds:.2f}")
                self.stopped_early = bool(cfg.patience) and self.best.since >= cfg.patience
                self._save_state(epoch)
                log.info("epoch %d/%d: train loss %.4f acc %.4f | val loss %.4f acc %.4f | %.1f s%s", epoch,
                         cfg.epochs, train_loss, train_acc, val_loss, val_acc, seconds, "  (best)" if better else "")
                if self.stopped_early:
                    log.info("no better validation accuracy for %d epochs: stopping early", cfg.patience)

    def _train_epoch(self, epoch: int) -> tuple[float, float]:
        cfg = self.config
        data = self.data["training"]
        order = self.group.order(len(data), seed=cfg.seed, epoch=epoch)
        torch.manual_seed(epoch_seed(cfg.seed, epoch) + self.group.rank)  # dropout differs across ranks
        augmented = self.bank is not None and self.bank.augment.augments(epoch)
        if augmented:
            data = AugmentedView(data, self.bank, seed=cfg.seed, epoch=epoch)
        loader = make_loader(data, order, batch_size=cfg.batch_size, num_workers=self.num_workers,
                             seed=epoch_seed(cfg.seed, epoch), pin_memory=self.device.type == "cuda")
        self.model.train()
        bar = tqdm(loader, total=math.ceil(len(order) / cfg.batch_size), desc=f"epoch {epoch}/{cfg.epochs}",
                   unit="batch", leave=False, disable=None if cfg.progress else True, dynamic_ncols=True)
        with self.group.join(self.net):  # ranks whose share ends a step early (failed files) let the rest finish
            loss_sum, correct, seen = self._steps(bar)
        loss_sum, correct, seen = self.group.sum(loss_sum, correct, seen)
        self.group.share_failures(self.failures["training"])
        if not seen:
            raise DatasetError(f"{cfg.data_dir}: no training track could be loaded")
        if augmented and self.bank.augment.clean_batchnorm:  # validated and kept as clips come
            clean_batchnorm(self.model, self.data["training"], self.device, cfg.batch_size, self.num_workers)
        return loss_sum / seen, correct / seen

    def _steps(self, bar) -> tuple[float, int, int]:
        loss_sum, correct, seen = 0.0, 0, 0
        for batch in bar:
            self.failures["training"].note(batch)
            if not len(batch):
                continue
            x, y = batch.x.to(self.device, non_blocking=True), batch.y.to(self.device, non_blocking=True)
            self.optimizer.zero_grad(set_to_none=True)
            logits = self.net(x)
            loss = F.cross_entropy(logits, y)
            loss.backward()
            self.optimizer.step()
            loss_sum += float(loss.detach()) * len(batch)
            correct += int((logits.argmax(1) == y).sum())
            seen += len(batch)
            bar.set_postfix(loss=f"{loss_sum / seen:.3f}", acc=f"{correct / seen:.3f}", refresh=False)
        return loss_sum, correct, seen

    @torch.no_grad()
    def evaluate(self, split: str) -> tuple[float, float, list[int], list[int]]:
        """Mean loss, accuracy, true and predicted class indices on one split (NaN when empty)."""
        self.model.eval()
        loss_sum, y_true, y_pred = 0.0, [], []
        for batch in self._loader(split):
            self.failures[split].note(batch)
            if not len(batch):
                continue
            logits = self.model(batch.x.to(self.device))
            y = batch.y.to(self.device)
            loss_sum += float(F.cross_entropy(logits, y, reduction="sum"))
            y_true += y.tolist()
            y_pred += logits.argmax(1).tolist()
        if not y_true:
            return math.nan, math.nan, [], []
        accuracy = sum(int(t == p) for t, p in zip(y_true, y_pred)) / len(y_true)
        return loss_sum / len(y_true), accuracy, y_true, y_pred

    def _finish(self) -> TrainResult:
        cfg = self.config
        best = load_checkpoint(self.run_dir / WEIGHTS_NAME)
        self.model.load_state_dict(best.state_dict)
        _, test_acc, y_true, y_pred = self.evaluate("test")
        epochs_run = self.last_epoch()
        failed = self.failures["test"].reasons
        header = [
            f"Melodex genre CNN: report on the test split of {cfg.data_dir}",
            f"run: {self.run_dir.name}",
            f"model: the best on validation, epoch {self.best.epoch} of {epochs_run} "
            f"(validation accuracy {self.best.val_accuracy:.4f})",
            f"test tracks: {len(self.data['test'])}" + (f" ({len(failed)} could not be loaded and are left out)"
                                                       if failed else ""),
        ]
        report = format_report(y_true, y_pred, self.labels, header=header)
        with atomic_write(self.run_dir / REPORT_NAME, "w", encoding="utf-8") as handle:
            handle.write(report)
        params = read_json(self.run_dir / PARAMS_NAME)
        params["result"] = {
            "best_epoch": self.best.epoch, "best_val_accuracy": json_number(self.best.val_accuracy),
            "test_accuracy": json_number(test_acc), "epochs_run": epochs_run, "stopped_early": self.stopped_early,
            "failed_files": {s: sorted(f.reasons.values()) for s, f in self.failures.items() if f.reasons},
            "finished": datetime.now().isoformat(timespec="seconds"),
        }
        write_json(self.run_dir / PARAMS_NAME, params)
        log.info("test accuracy %.4f; report in %s", test_acc, self.run_dir / REPORT_NAME)
        return TrainResult(self.run_dir, self.best.epoch, self.best.val_accuracy, test_acc, epochs_run,
                           self.stopped_early, report)

    # -- files ------------------------------------------------------------------------------
    def dataset_size(self, split: str) -> int:
        return len(self.data[split])

    def last_epoch(self) -> int:
        state = torch.load(self.run_dir / STATE_NAME, map_location="cpu", weights_only=True)
        return int(state["epoch"])

    def _loader(self, split: str):
        data = self.data[split]
        return make_loader(data, range(len(data)), batch_size=self.config.batch_size, num_workers=self.num_workers,
                           pin_memory=self.device.type == "cuda")

    def _save_weights(self, epoch: int, val_acc: float, val_loss: float, train_acc: float) -> None:
        if not self.group.is_main:
            return
        metadata = {"run": self.run_dir.name, "epoch": epoch, "val_accuracy": json_number(val_acc),
                    "val_loss": json_number(val_loss), "train_accuracy": json_number(train_acc),
                    "seed": self.config.seed, "dataset": str(self.config.data_dir)}
        save_checkpoint(self.run_dir / WEIGHTS_NAME, self.model, self.labels, self.features, metadata)

    def _save_state(self, epoch: int) -> None:
        if not self.group.is_main:
            return
        state = {
            "format": STATE_FORMAT, "version": 1, "epoch": epoch,
            "model": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
            "optimizer": self.optimizer.state_dict(),
            "best_epoch": self.best.epoch, "best_val_accuracy": self.best.val_accuracy,
            "best_val_loss": self.best.val_loss, "since": self.best.since, "stopped_early": self.stopped_early,
            **self.extra_state(),
        }
        with atomic_write(self.run_dir / STATE_NAME, "wb") as handle:
            torch.save(state, handle)

    def params(self) -> dict[str, Any]:
        cfg = self.config
        hyper = {k: v for k, v in cfg.to_dict().items() if k not in ("resume", "progress", "device", "num_workers",
                                                                    "output_dir")}
        for name in ("data_dir", "metadata_dir", "cache_dir"):  # absolute, so --resume works from anywhere
            if hyper[name] is not None:
                hyper[name] = os.path.abspath(hyper[name])
        hyper.update(optimizer="Adam", betas=[0.9, 0.999], loss="cross_entropy")
        sizes = {s: len(d) for s, d in self.data.items()}
        return {
            "run": self.run_dir.name,
            "created": datetime.now().isoformat(timespec="seconds"),
            "hyperparameters": hyper,
            "seed": cfg.seed,
            "device": str(self.device),
            "num_workers": self.num_workers,
            "processes": self.group.world_size,
            "labels": self.labels,
            "dataset": {"name": self.dataset.name, "root": str(self.dataset.root), "data_dir": str(cfg.data_dir),
                        "metadata_dir": None if cfg.metadata_dir is None else str(cfg.metadata_dir),
                        "kind": cfg.kind, "subset": cfg.subset, "tracks": len(self.dataset.tracks),
                        "skipped_by_loader": len(self.dataset.skipped)},
            "split_sizes": sizes,
            "features": self.features.to_dict(),
            "feature_source": {"cache_dir": None if cfg.cache_dir is None else str(cfg.cache_dir),
                               "cached_fraction": round(self.cached_fraction, 4)},
            "normalization": {"mean": self.model.feature_mean.tolist(), "std": self.model.feature_std.tolist()},
            "model": self.model.config.to_dict(),
            "augmentation": self.augmentation(),
            "versions": runtime.library_versions(),
        }

    def augmentation(self) -> dict[str, Any]:
        """What ``params.json`` records of the augmentation: off, or its settings and variant bank."""
        if self.bank is None:
            return {"enabled": False}
        return {"enabled": True, **self.bank.augment.to_dict(),
                "bank_dir": None if self.bank.temporary else os.path.abspath(self.bank.root), **self.bank_counts}


def _read_run(config: TrainConfig) -> tuple[Path, dict[str, Any], dict[str, Any] | None, bool]:
    """The run ``config.resume`` names: its directory, params, saved state, and whether it has a report."""
    run_dir = resolve_run_dir(config.resume, config.output_dir)
    reported = any((run_dir / name).is_file() for name in (REPORT_NAME, RETRIEVAL_REPORT_NAME))
    return run_dir, read_json(run_dir / PARAMS_NAME), read_state(run_dir), reported


def _load(config: TrainConfig) -> Dataset:
    # The loader itself reports the tracks it leaves out (no label, missing mp3).
    return load_dataset(config.data_dir, metadata_dir=config.metadata_dir, kind=config.kind,
                        subset=config.subset, seed=config.seed)


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

    group = from_environment()  # one process, or the group torchrun started (melodex.training.distributed)
    with group.session(config.device) as device:
        config = config if group.is_main else replace(config, progress=False)
        trainer = (Trainer.resume(config, device, group) if config.resume is not None
                   else Trainer.start(config, device, group))
        return trainer.fit()
