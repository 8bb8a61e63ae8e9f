"""Decoding audio files into tagged MFCC segments for inference, across worker processes.

:class:`SegmentStream` is the ``IterableDataset`` behind :class:`melodex.inference.predictor.Predictor`:
each worker takes the next file in the order given as it becomes free, decodes it and yields one
:class:`SegmentItem` per segment (its MFCC, computed in the worker with the checkpoint's
:class:`~melodex.features.mfcc.FeatureConfig`), or one item carrying the error when the file cannot
be read. The last item of a file says so and carries the file's duration, so the consumer knows
when a file is complete without a second message.

Segments: first-30s mode takes :func:`melodex.audio.segments.first_segment` of the first
``segment_seconds``; full-file mode streams the file (:func:`melodex.audio.decode.stream_audio`)
through :func:`melodex.audio.segments.sliding_segments`, so a long file never sits in memory.
"""

from __future__ import annotations

import gc
import inspect
import logging
import multiprocessing
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from melodex.audio.decode import load_audio_and_length, probe_duration, stream_audio
from melodex.audio.fingerprint import segment_fingerprint
from melodex.audio.segments import Segment, first_segment, sliding_segments
from melodex.errors import AudioLoadError
from melodex.features.mfcc import FeatureConfig, compute_mfcc
from melodex.util.workers import start_worker

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DecodeSettings:
    """How files become segments: the checkpoint's features, the mode, and full mode's windows."""

    config: FeatureConfig
    full: bool
    hop_seconds: float | None
    last: str
    fingerprint: bool = False  # a Chromaprint of the first segment, carried on the file's final item


class SegmentItem(NamedTuple):
    """One segment (or one failure) travelling from a decoding worker to the model."""

    file_index: int
    segment: int
    start_time: float
    end_time: float
    mfcc: np.ndarray | None  # (n_mfcc, n_frames) float32; None on error
    last: bool  # the file's final item
    duration: float | None  # set on the final item
    error: str | None = None
    fingerprint: bytes | None = None  # set on the final item when DecodeSettings.fingerprint
    # (probabilities, embedding) when the worker ran the model itself (mfcc is then None)
    outputs: tuple[np.ndarray, np.ndarray] | None = None


class _Counted:
    """Passes chunks through, counting their samples."""

    def __init__(self, chunks: Iterable[np.ndarray]):
        self.chunks = chunks
        self.samples = 0

    def __iter__(self) -> Iterator[np.ndarray]:
        for chunk in self.chunks:
            self.samples += chunk.size
            yield chunk


def file_segments(path: Path, settings: DecodeSettings) -> Iterator[tuple[Segment, bool, float | None]]:
    """Decode ``path`` into ``(segment, is_last, duration)``; duration is set on the last one.

    Raises AudioLoadError when the file cannot be decoded (possibly after some segments).
    """
    cfg = settings.config
    if settings.full:
        counted = _Counted(stream_audio(path, sr=cfg.sample_rate))
        segments = sliding_segments(
            counted, sr=cfg.sample_rate, window_seconds=cfg.segment_seconds,
            hop_seconds=settings.hop_seconds, last=settings.last,
        )
    else:  # as read_first_segment, keeping the header's length from the same open
        counted = None
        audio, length = load_audio_and_length(path, duration=cfg.segment_seconds, sr=cfg.sample_rate)
        segments = iter([first_segment(audio, sr=cfg.sample_rate, window_seconds=cfg.segment_seconds)])
    previous: Segment | None = None
    for segment in segments:  # one segment of look-ahead tells which one is last
        if previous is not None:
            yield previous, False, None
        previous = segment
    if previous is None:
        raise AudioLoadError(path, "the file holds no audio samples")
    if counted is not None:
        duration = counted.samples / cfg.sample_rate
    elif previous.end_time < cfg.segment_seconds - 1.0 / cfg.sample_rate:
        duration = previous.end_time  # the whole file was decoded
    else:
        duration = length or probe_duration(path) or previous.end_time
    yield previous, True, duration


def file_items(index: int, path: Path, settings: DecodeSettings) -> Iterator[SegmentItem]:
    """Every item of one file: its segments' MFCCs, or a single error item."""
    fingerprint = None
    try:
        for seg, last, duration in file_segments(path, settings):
            if settings.fingerprint and seg.index == 0:
                fingerprint = segment_fingerprint(seg, settings.config.sample_rate)
            mfcc = compute_mfcc(seg.audio, settings.config)
            yield SegmentItem(index, seg.index, seg.start_time, seg.end_time, mfcc, last, duration,
                              fingerprint=fingerprint if last else None)
    except AudioLoadError as exc:
        yield SegmentItem(index, -1, 0.0, 0.0, None, True, None, exc.reason)
    except Exception as exc:  # a decoder bug must not end a batch of thousands; it is recorded
        log.debug("unexpected failure on %s", path, exc_info=True)
        yield SegmentItem(index, -1, 0.0, 0.0, None, True, None, f"{type(exc).__name__}: {exc}")


class SegmentStream(torch.utils.data.IterableDataset):
    """Segments of ``paths``, for one pass; each worker takes the next file as it becomes free.

    The workers share one counter, the index of the next file to take, so they take the files in
    the order given, one at a time, and finish within a file of each other. A fixed share each
    (worker ``w`` of ``W`` taking files ``w, w+W, ...``) drifted apart: on 2 cores one worker had
    idled ~6% of a 200-file run when the other, a few files behind, still had its share to do,
    and a long file held up every file behind it in its worker's share while the other worker's
    results waited in the reorder buffer.
    """

    def __init__(self, paths: list[Path], settings: DecodeSettings, *, workers: bool = True):
        super().__init__()
        self.paths = paths
        self.settings = settings
        # files handed out so far, which the workers inherit; none to share when this process reads
        # alone (a shared value needs a semaphore, which some sandboxes lack)
        self.taken = multiprocessing.Value("q", 0) if workers else None

    def __iter__(self) -> Iterator[SegmentItem]:
        if torch.utils.data.get_worker_info() is None:  # in this process: every file, in order
            for index, path in enumerate(self.paths):
                yield from file_items(index, path, self.settings)
            return
        if self.taken is None:  # each worker would take every file
            raise RuntimeError("a SegmentStream made with workers=False is read by DataLoader workers")
        while (index := self._take()) < len(self.paths):
            yield from file_items(index, self.paths[index], self.settings)

    def _take(self) -> int:
        """The index of the next file no worker has taken yet (``len(paths)`` once all are)."""
        with self.taken.get_lock():
            index = self.taken.value
            self.taken.value = min(index + 1, len(self.paths))
        return index


class WorkerInit:
    """Set up each decoding worker: one torch thread, Ctrl-C left to the main process, and death
    with it.

    A terminal's Ctrl-C reaches the whole process group. A worker that took it as well stopped with
    a KeyboardInterrupt wherever it was; inside a finaliser (``SoundFile.__del__``) Python can only
    print it, and a dozen lines of "Exception ignored in ..." traceback landed under the main
    process's one-line "interrupted: ..." (seen in a full-suite run). The main process stops the
    workers itself when it closes the DataLoader.

    The objects the worker inherits from the main process (torch's modules, the model) are
    moved out of the garbage collector's sight (``gc.freeze``): a collection would otherwise
    walk them all, over and over, for the worker's short-lived arrays (~1 ms a file).
    """

    def __init__(self) -> None:
        self.parent_pid = os.getpid()

    def __call__(self, _worker_id: int) -> None:
        start_worker(self.parent_pid, ignore_sigint=True)
        gc.freeze()


# Take segments as workers finish them (torch >= 2.6); the reorder buffer restores file order.
# In order, a worker busy with a long file would hold the others back item by item.
UNORDERED = {"in_order": False} if "in_order" in inspect.signature(torch.utils.data.DataLoader).parameters else {}


def identity(items: list[SegmentItem]) -> list[SegmentItem]:
    """The DataLoader's collate function: a worker's list of items, numpy arrays as they are."""
    return items  # keep numpy arrays: a 50 kB MFCC pickles faster than a shared-memory tensor


class RunModel:
    """The collate function that runs the model in the decoding worker, on the CPU.

    ``forward`` maps a list of MFCCs to (probabilities (B, n_labels), embeddings (B, dim)); the
    worker's list of items becomes one forward pass, and each item leaves the worker with its
    ``outputs`` and without its MFCC. Error items pass through as they are.
    """

    def __init__(self, forward: Callable[[list[np.ndarray]], tuple[np.ndarray, np.ndarray]]):
        self.forward = forward

    def __call__(self, items: list[SegmentItem]) -> list[SegmentItem]:
        decoded = [i for i, item in enumerate(items) if item.error is None]
        if not decoded:
            return items
        probs, embs = self.forward([items[i].mfcc for i in decoded])
        out = list(items)
        for i, p, e in zip(decoded, probs, embs):
            out[i] = items[i]._replace(mfcc=None, outputs=(p, e))
        return out
