"""A training run's directory and the files in it.

``training_outputs/YYYY-MM-DD_HH-MM-SS/`` (``_2``, ``_3``... when the name is taken) holds::

    params.json                  every setting, the labels, split sizes, versions; results at the end
    history.csv                  epoch,train_loss,train_accuracy,val_loss,val_accuracy,seconds
    model_weights.pth            the best-on-validation model (a melodex checkpoint)
    classification_report.txt    per-class precision/recall/F1, accuracy, confusion matrix (test split)
    retrieval_report.txt         instead, for a contrastive run: top-10 same-artist/album neighbours
    train_state.pth              model + optimizer + epoch + best so far, to resume; plain data

``training_outputs/latest`` is a relative symlink to the newest run, replaced atomically; where
symlinks cannot be made, ``latest.txt`` holds the run's name instead.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
from datetime import datetime
from pathlib import Path
from typing import Any

import torch
from sklearn.metrics import classification_report, confusion_matrix

from melodex.errors import OutputError, ResumeError
from melodex.model.checkpoint import load_failure_reason
from melodex.util.atomic import atomic_write, describe_os_error
from melodex.util.csvlog import AppendLog, csv_line, read_csv_lines

log = logging.getLogger(__name__)

PARAMS_NAME = "params.json"
HISTORY_NAME = "history.csv"
REPORT_NAME = "classification_report.txt"
RETRIEVAL_REPORT_NAME = "retrieval_report.txt"  # a contrastive run's report (melodex.training.contrastive)
STATE_NAME = "train_state.pth"
STATE_FORMAT = "melodex-train-state"
HISTORY_HEADER = ("epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "seconds")
RUN_NAME_RE = re.compile(r"^\d{4}-\d{2}-\d{2}_\d{2}-\d{2}-\d{2}(_\d+)?$")


def new_run_dir(output_root: str | Path, now: datetime | None = None) -> Path:
    """Create and return ``output_root/YYYY-MM-DD_HH-MM-SS`` (with ``_N`` when taken)."""
    root = Path(output_root)
    stamp = (now or datetime.now()).strftime("%Y-%m-%d_%H-%M-%S")
    try:
        root.mkdir(parents=True, exist_ok=True)
        for n in range(1, 10_000):
            path = root / (stamp if n == 1 else f"{stamp}_{n}")
            try:
                path.mkdir()
                return path
            except FileExistsError:
                continue
    except OSError as exc:
        raise OutputError(f"{root}: cannot create a run directory ({describe_os_error(exc)})") from None
    raise OutputError(f"{root}: too many runs named {stamp}")


def point_latest(run_dir: Path) -> Path:
    """Make ``<output_root>/latest`` name ``run_dir``; returns the link (or ``latest.txt``).

    A relative symlink is made under a temporary name and moved over ``latest`` in one step,
    so ``latest`` always resolves to a run. Without symlinks, ``latest.txt`` is written.
    """
    root = run_dir.parent
    link = root / "latest"
    tmp = root / f".latest.{os.getpid()}.tmp"
    try:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        os.symlink(run_dir.name, tmp, target_is_directory=True)
        os.replace(tmp, link)
        with contextlib.suppress(FileNotFoundError):
            (root / "latest.txt").unlink()  # a stale fallback must not disagree with the link
        return link
    except (OSError, NotImplementedError) as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        log.debug("cannot link %s (%s); writing latest.txt", link, exc)
    text_file = root / "latest.txt"
    with atomic_write(text_file, "w", encoding="utf-8") as handle:
        handle.write(run_dir.name + "\n")
    return text_file


def resolve_run_dir(name: str | Path, output_root: str | Path) -> Path:
    """``latest``, a run's name under ``output_root``, or a path -> an existing run directory."""
    root = Path(output_root)
    name = Path(name)
    candidates = [name] if name.is_absolute() else [name, root / name]
    if str(name) == "latest":
        candidates = [root / "latest"]
        text_file = root / "latest.txt"
        if not (root / "latest").exists() and text_file.is_file():
            candidates = [root / text_file.read_text(encoding="utf-8").strip()]
    for path in candidates:
        if path.is_dir():
            if not (path / PARAMS_NAME).is_file():
                raise ResumeError(f"{path}: not a training run (no {PARAMS_NAME}), nothing to resume")
            return path.resolve()
    raise ResumeError(f"{candidates[-1]}: no such run directory to resume")


def write_json(path: Path, data: dict[str, Any]) -> None:
    with atomic_write(path, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2, default=str)
        handle.write("\n")


def read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ResumeError(f"{path}: cannot read ({exc})") from None


def read_state(run_dir: Path) -> dict[str, Any] | None:
    """The run's saved training state (plain data, read with weights_only), None when there is none."""
    path = run_dir / STATE_NAME
    if not path.exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # one line; pickled code is named as refused, never run
        raise ResumeError(f"{path}: cannot read the saved state ({load_failure_reason(path, exc)})") from None
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise ResumeError(f"{path}: not a Melodex training state")
    return state


def open_history(run_dir: Path, keep_epochs: int | None = None) -> AppendLog:
    """``history.csv`` opened for appending; with ``keep_epochs``, later rows are dropped first.

    A run killed after writing an epoch's row but before saving its state redoes that epoch
    on resume; dropping the row keeps one row per epoch.
    """
    path = run_dir / HISTORY_NAME
    if keep_epochs is not None and path.exists():
        rows = [r for r in read_csv_lines(path, HISTORY_HEADER) if int(r[0]) <= keep_epochs]
        with atomic_write(path, "w", encoding="utf-8", newline="") as handle:
            handle.write(csv_line(*HISTORY_HEADER))
            handle.writelines(csv_line(*r) for r in rows)
    return AppendLog(path, HISTORY_HEADER)


def format_report(
    y_true: list[int],
    y_pred: list[int],
    labels: list[str],
    *,
    header: list[str],
) -> str:
    """sklearn's per-class report, the overall accuracy and a labelled confusion matrix."""

    lines = list(header)
    if not y_true:
        lines.append("No tracks to evaluate.")
        return "\n".join(lines) + "\n"
    classes = list(range(len(labels)))
    accuracy = sum(int(t == p) for t, p in zip(y_true, y_pred)) / len(y_true)
    lines.append(f"accuracy: {accuracy:.4f} ({sum(int(t == p) for t, p in zip(y_true, y_pred))} of {len(y_true)})")
    lines.append("")
    lines.append(classification_report(y_true, y_pred, labels=classes, target_names=labels, digits=3, zero_division=0))
    matrix = confusion_matrix(y_true, y_pred, labels=classes)
    lines.append("confusion matrix (rows: true label, columns: predicted label)")
    first = max(len(label) for label in labels)
    width = max(max(len(label) for label in labels), len(str(int(matrix.max())))) + 2
    lines.append(" " * first + "".join(label.rjust(width) for label in labels))
    for label, row in zip(labels, matrix):
        lines.append(label.ljust(first) + "".join(str(int(v)).rjust(width) for v in row))
    return "\n".join(lines) + "\n"
