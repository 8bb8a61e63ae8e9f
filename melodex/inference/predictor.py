"""Audio files in, per-file genre probabilities and embeddings out: the :class:`Predictor`.

Two modes:

* **first-30s** (default): the first segment of each file (30 s, zero-padded when shorter);
* **full-file** (``full=True``): sliding segments over the whole file, decoded as a stream
  (:func:`melodex.audio.decode.stream_audio` -> :func:`melodex.audio.segments.sliding_segments`).

A file's ``probabilities`` are the softmax of each segment's logits averaged over its
segments, its ``embedding`` the mean of the segments' embeddings (see :mod:`melodex.inference.results`).

How files stream (the default path): a torch ``DataLoader`` over
:class:`~melodex.inference.stream.SegmentStream`, an ``IterableDataset`` read by
``num_workers`` processes (each takes the next file as it becomes free). Each
item is one segment's MFCC, computed in the worker with the checkpoint's
:class:`~melodex.features.mfcc.FeatureConfig` and tagged with its file's index. Where the model
runs depends on the cores (:func:`model_in_workers`):

* when the workers take every core and the model is on the CPU (a laptop, a 2-core runner),
  each worker runs the model on its own lists of ``batch_size`` segments
  (:class:`~melodex.inference.stream.RunModel`) and sends outputs, not MFCCs. A third busy
  process, the main one running the model, would share the workers' cores and caches: on 2
  cores that cost ~10% more CPU a file;
* otherwise (a GPU, or cores to spare) a worker sends its MFCCs in lists of
  ``batch_size / num_workers`` and the main process groups ``batch_size`` segments per forward.

The main process adds the outputs to per-file accumulators and hands finished files on in
sorted-path order through a small reorder buffer. Prefetch is bounded, and nothing holds more
than the files in flight, so memory stays flat however many files there are. ``legacy=True``
is the reference path: decode one file, run it, next.

A file that cannot be decoded does not stop the run: its :class:`FileResult` carries
``error`` (the reason in one line) and the next file follows. A worker killed outright (the
out-of-memory killer) ends it with a :class:`~melodex.errors.WorkerError`, raised when the
caller asks for the next result, never in the middle of the caller's work on the last one.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import torch

from melodex.audio.files import find_audio_files
from melodex.audio.segments import LAST_POLICIES
from melodex.constants import DECODE_WORKERS, SEGMENT_BATCH
from melodex.errors import WorkerError
from melodex.features.mfcc import FeatureConfig
from melodex.inference.fast_forward import FastForward, model_outputs
from melodex.inference.results import MODE_FIRST, MODE_FULL, FileResult, SegmentPrediction
from melodex.inference.stream import (
    UNORDERED,
    DecodeSettings,
    RunModel,
    SegmentItem,
    SegmentStream,
    WorkerInit,
    identity,
)
from melodex.model.checkpoint import Checkpoint, load_model
from melodex.model.cnn import GenreCNN, place_model
from melodex.util.device import resolve_device
from melodex.util.processes import WORKER_DIED
from melodex.util.workers import HeldWorkerDeaths, usable_cores

log = logging.getLogger(__name__)


def default_num_workers(requested: int = DECODE_WORKERS) -> int:
    """``requested`` decoding workers, capped at the CPU cores this process may use."""
    return max(0, min(int(requested), usable_cores()))


# ----------------------------------------------------------------------------- results


class _Accumulator:
    """Running sums of one file's segment outputs."""

    def __init__(self, path: Path, mode: str, labels: tuple[str, ...], embeddings: bool):
        self.path, self.mode, self.labels, self.embeddings = path, mode, labels, embeddings
        self.segments: list[SegmentPrediction] = []
        self.prob_sum: np.ndarray | None = None
        self.emb_sum: np.ndarray | None = None

    def add(self, item: SegmentItem, probs: np.ndarray, emb: np.ndarray) -> None:
        self.segments.append(SegmentPrediction(item.segment, item.start_time, item.end_time, probs))
        p = probs.astype(np.float64)
        self.prob_sum = p if self.prob_sum is None else self.prob_sum + p
        if self.embeddings:
            e = emb.astype(np.float64)
            self.emb_sum = e if self.emb_sum is None else self.emb_sum + e

    def result(self, duration: float | None, fingerprint: bytes | None = None) -> FileResult:
        n = len(self.segments)
        return FileResult(
            audio_file=str(self.path), mode=self.mode, labels=self.labels, duration=duration,
            segments=tuple(self.segments),
            probabilities=(self.prob_sum / n).astype(np.float32),
            embedding=None if self.emb_sum is None else (self.emb_sum / n).astype(np.float32),
            fingerprint=fingerprint,
        )


def model_in_workers(device: torch.device, workers: int) -> bool:
    """True when the decoding workers should run the model themselves: on the CPU, when they
    take every core this process may use (so the main process would only compete with them)."""
    return device.type == "cpu" and workers > 0 and workers >= usable_cores()


def _main_threads(workers: int) -> int:
    """Torch threads for the main process: the cores the decoding workers leave, at most 4.

    This CNN runs a segment in ~7 ms on one thread; on a small machine a second thread
    competing with busy workers costs more in synchronisation than it gains (measured 2-20x
    slower per segment on 2 cores under load), so the main process keeps to what is free.
    """
    cores = usable_cores()
    return max(1, min(4, cores - workers if workers else cores // 2))


@contextlib.contextmanager
def _torch_threads(n: int) -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(max(1, n))
    try:
        yield
    finally:
        torch.set_num_threads(before)


class Predictor:
    """Classify and embed audio files with a trained model.

    Parameters
    ----------
    model : str, Path or (GenreCNN, Checkpoint)
        A ``.pth`` checkpoint, a run directory, ``training_outputs/latest``, or a model already
        loaded with :func:`melodex.model.checkpoint.load_model`. The checkpoint's
        :class:`~melodex.features.mfcc.FeatureConfig` drives decoding and MFCCs.
    device : str
        ``"auto"`` (cuda when there is one), ``"cpu"`` or ``"cuda"``; a DeviceError when cuda
        is asked for and absent.
    batch_size : int
        Segments per forward pass.
    num_workers : int
        Decoding processes, capped at the available cores; 0 decodes in this process.

    Raises
    ------
    ModelLoadError
        The model path is missing, not a Melodex checkpoint, or unsafe to load.

    Examples
    --------
    >>> predictor = Predictor("training_outputs/latest")            # doctest: +SKIP
    >>> for result in predictor.predict(["music/"], full=True):      # doctest: +SKIP
    ...     print(result.audio_file, result.top(1), result.error)
    """

    def __init__(
        self,
        model: str | Path | tuple[GenreCNN, Checkpoint],
        *,
        device: str = "auto",
        batch_size: int = SEGMENT_BATCH,
        num_workers: int = DECODE_WORKERS,
    ):
        self.device = resolve_device(device)
        if isinstance(model, (str, os.PathLike)):
            net, self.checkpoint = load_model(model, self.device)
        else:
            net, self.checkpoint = model
        self.model = place_model(net, self.device).eval()
        self._net = FastForward(self.model)  # the same outputs as model.embed_and_classify, cheaper
        self.labels: tuple[str, ...] = tuple(self.checkpoint.labels)
        self.feature_config: FeatureConfig = self.checkpoint.feature_config
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.batch_size = int(batch_size)
        self.num_workers = default_num_workers(num_workers)

    # -- public API -------------------------------------------------------------------

    def predict(
        self,
        paths: Iterable[str | Path],
        *,
        full: bool = False,
        hop_seconds: float | None = None,
        last: str = "pad",
        embeddings: bool = True,
        legacy: bool = False,
        fingerprints: bool = False,
    ) -> Iterator[FileResult]:
        """Yield one :class:`FileResult` per audio file, in sorted-path order.

        Parameters
        ----------
        paths : iterable of str or Path
            Files and directories (searched recursively; see :func:`melodex.audio.files.find_audio_files`).
        full : bool
            Analyse the whole file in sliding segments instead of its first segment.
        hop_seconds : float, optional
            Seconds between window starts in full mode; default one window (no overlap).
        last : {"pad", "align", "drop"}
            The tail after the last full window in full mode (see :mod:`melodex.audio.segments`).
        embeddings : bool
            Compute the mean embedding; False leaves ``FileResult.embedding`` as None.
        legacy : bool
            Decode and run one file at a time in this process (the reference path).
        fingerprints : bool
            Also compute each file's audio fingerprint (:mod:`melodex.audio.fingerprint`) from its
            first decoded segment; ``FileResult.fingerprint`` stays None when libchromaprint is missing.

        A file that fails yields a result with ``error`` set; the run goes on.
        """
        if last not in LAST_POLICIES:
            raise ValueError(f"last must be one of {LAST_POLICIES}, not {last!r}")
        if hop_seconds is not None and not (hop_seconds > 0 and math.isfinite(hop_seconds)):
            raise ValueError("hop_seconds must be a positive number of seconds")
        files = find_audio_files(paths, missing="keep")
        settings = DecodeSettings(self.feature_config, bool(full), hop_seconds, last, fingerprint=fingerprints)
        if legacy:  # the seed's path: one file at a time, in this process, batches never span files
            return self._predict_streaming(files, settings, embeddings, workers=0, one_file_per_batch=True)
        return self._predict_streaming(files, settings, embeddings, workers=min(self.num_workers, len(files)))

    def predict_file(self, path: str | Path, **options) -> FileResult:
        """One file's :class:`FileResult` (decoded in this process); options as :meth:`predict`."""
        options.setdefault("legacy", True)
        return next(iter(self.predict([Path(path)], **options)))

    # -- internals --------------------------------------------------------------------

    def _mode(self, settings: DecodeSettings) -> str:
        return MODE_FULL if settings.full else MODE_FIRST

    def _forward(self, mfccs: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """MFCCs -> (softmax probabilities (B, n_labels), embeddings (B, dim)) as numpy;
        a headless model (no labels) gives probabilities of shape (B, 0)."""
        return model_outputs(self._net, mfccs, self.device)

    def _predict_streaming(self, files: list[Path], settings: DecodeSettings, embeddings: bool, *, workers: int,
                           one_file_per_batch: bool = False) -> Iterator[FileResult]:
        """Segments of ``files`` decoded by ``workers`` processes (0: in this process), run through
        the model ``batch_size`` at a time, and yielded as per-file results in the files' order.
        ``one_file_per_batch`` runs a batch at the end of every file, as the seed did."""
        if not files:
            return
        mode = self._mode(settings)
        in_workers = model_in_workers(self.device, workers)
        # A worker sends its segments in lists, two lists ahead: a message costs the main process
        # 0.2-0.3 ms and a worker ~0.1 ms (queue, pickling, the loader's bookkeeping) whatever it
        # carries, and first-30s mode has one segment per file. A worker that runs the model
        # sends one forward pass's outputs per list; else batch_size / workers MFCCs.
        if in_workers:
            per_list = self.batch_size
            collate = RunModel(functools.partial(model_outputs, self._net, device=self.device))
        else:
            per_list, collate = (math.ceil(self.batch_size / workers) if workers else 1), identity
        loader = torch.utils.data.DataLoader(
            SegmentStream(files, settings, workers=workers > 0),
            batch_size=per_list,
            collate_fn=collate,
            num_workers=workers,
            worker_init_fn=WorkerInit() if workers else None,
            prefetch_factor=2 if workers else None,
            **UNORDERED,
        )
        open_files: dict[int, _Accumulator] = {}
        ready: dict[int, FileResult] = {}  # the reorder buffer: finished, waiting for earlier files
        batch: list[SegmentItem] = []
        next_index = 0

        def add(item: SegmentItem, probs: np.ndarray, emb: np.ndarray) -> None:
            acc = open_files.get(item.file_index)
            if acc is None:  # the file failed after this segment was queued
                return
            acc.add(item, probs, emb)
            if item.last:
                ready[item.file_index] = acc.result(item.duration, item.fingerprint)
                del open_files[item.file_index]

        def run_batch() -> None:
            probs, embs = self._forward([it.mfcc for it in batch])
            for item, p, e in zip(batch, probs, embs):
                add(item, p, e)
            batch.clear()

        def finished() -> Iterator[FileResult]:
            """The results the reorder buffer can hand on now: the next files in order."""
            nonlocal next_index
            while next_index in ready:
                yield ready.pop(next_index)
                next_index += 1

        threads = _main_threads(workers)  # 1 when the workers take every core, as they do to run the model
        log.debug("streaming %d files: %d decoding workers, the model on %s in %s", len(files), workers,
                  self.device, "the workers" if in_workers else f"this process ({threads} torch threads)")
        with _torch_threads(threads):
            stream = iter(loader)
            try:
                with HeldWorkerDeaths() as deaths:  # after iter(), where torch sets its SIGCHLD handler
                    for items in stream:
                        for item in items:
                            if item.error is not None:
                                open_files.pop(item.file_index, None)
                                ready[item.file_index] = FileResult.failed(
                                    str(files[item.file_index]), mode, self.labels, item.error)
                            else:
                                if item.file_index not in open_files:
                                    open_files[item.file_index] = _Accumulator(
                                        files[item.file_index], mode, self.labels, embeddings)
                                if item.outputs is not None:  # the worker ran the model
                                    add(item, *item.outputs)
                                else:
                                    batch.append(item)
                                    if len(batch) >= self.batch_size or (one_file_per_batch and item.last):
                                        run_batch()
                            yield from deaths.hand_on(finished())
                    if batch:
                        run_batch()
                    yield from deaths.hand_on(finished())
            except RuntimeError as exc:  # torch's words for a worker killed outright (SIGKILL, out of memory)
                if not str(exc).startswith("DataLoader worker"):
                    raise
                raise WorkerError(f"{WORKER_DIED}: {exc}; the results before it are kept, and the same "
                                  "command goes on from there (infer: with --resume)") from None
            finally:
                del stream  # shuts the workers down, also when the caller stops early
        if next_index != len(files):  # a worker died without reporting: never drop files silently
            raise RuntimeError(f"inference ended after {next_index} of {len(files)} files")
