"""Inference as a Ray Data pipeline: the :class:`RayPredictor` behind ``--engine ray``.

The dataset, stage by stage::

    file list (index, path)                  from_items; files already done are left out first
      -> decode      CPU tasks (DECODE_CPUS)   file -> its segments' MFCCs (CPU clusters) or samples
                                               (GPU clusters), or a row with the error; a URI
                                               (s3://...) is read as bytes through pyarrow.fs
      -> CNN         actor pool                the model built once per actor; num_gpus=1 per actor
                                               (and the MFCC there) when the cluster has GPUs, else ACTOR_CPUS
      -> the driver                            rows -> FileResult, in the files' order (predict)
      -> or a sink   CPU tasks (WRITE_CPUS)    rows -> FileResults -> ``sink`` (write): the store's
                                               parts written on the nodes; small rows to the driver

:meth:`RayPredictor.predict` yields the same :class:`~melodex.inference.results.FileResult`
objects as :meth:`Predictor.predict <melodex.inference.predictor.Predictor.predict>`, so the
existing writers take them unchanged (``infer``: one output in the files' order, written by the
driver). :meth:`RayPredictor.write` hands them to a sink on the nodes instead (``index``: the
store's parts written there, :mod:`melodex.library.staging`), so the driver never holds them.
Decoding and the MFCC are the local engine's own functions: embeddings agree within float
rounding (forward passes group segments differently), failures carry the same reasons.

Two traps of Ray Data are designed around:

* an actor pool that holds every CPU of a node leaves none for the decode tasks, and the
  pipeline stalls (seen on 2 CPUs): a CPU actor asks for ACTOR_CPUS (a fraction), and there is
  at most one actor per ``CPUS_PER_ACTOR`` CPUs;
* Ray fuses a task stage into the actor stage that follows when both ask for the same
  resources, and the decode then runs inside the actor: the two stages ask for different ones.

Arrays travel between stages as raw bytes in binary columns (Arrow keeps them exactly; numpy's
fixed-width byte strings would drop trailing zero bytes), with shapes in their own columns.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import ray
import torch

from melodex.audio.decode import AudioBytes
from melodex.audio.fingerprint import segment_fingerprint
from melodex.audio.files import find_audio_sources
from melodex.audio.segments import LAST_POLICIES
from melodex.audio.uris import RemoteFile, read_bytes
from melodex.constants import SEGMENT_BATCH
from melodex.errors import AudioLoadError, DeviceError
from melodex.features.mfcc import MFCC, FeatureConfig, compute_mfcc
from melodex.inference.fast_forward import FastForward, model_outputs
from melodex.inference.results import MODE_FIRST, MODE_FULL, FileResult, SegmentPrediction
from melodex.inference.stream import DecodeSettings, file_segments
from melodex.model.checkpoint import Checkpoint, load_checkpoint
from melodex.model.cnn import place_model
from melodex.util.workers import usable_cores

log = logging.getLogger(__name__)

DECODE_CPUS = 1.0  # one decode task per CPU
ACTOR_CPUS = 0.5  # a CPU actor leaves room for decode tasks beside it (and differs from DECODE_CPUS: no fusion)
CPUS_PER_ACTOR = 4  # on CPUs the MFCC + forward is about a third of a file's cost: 1 actor per 4 CPUs
FILES_PER_BLOCK = 8  # files per decode task, once there are enough files to keep every CPU busy
WRITE_CPUS = 0.25  # a sink task (writing a store part) is mostly I/O; it differs from both stages above


def _failure(exc: Exception) -> str:
    """The reason the local engine gives for a file that fails (see ``inference.stream.file_items``)."""
    if isinstance(exc, AudioLoadError):
        return exc.reason
    return f"{type(exc).__name__}: {exc}"


def _as_bytes(array: np.ndarray) -> bytes:
    return np.ascontiguousarray(array).tobytes()


def decode_files(batch: pd.DataFrame, settings: DecodeSettings, filesystems: list,
                 mfcc: bool = False) -> pd.DataFrame:
    """The decode stage: one row per file with its segments' samples (float32, one segment per
    row of ``audio``), their numbers and times, its duration and (``settings.fingerprint``) the
    audio fingerprint of its first segment, as the local engine computes it; or the reason it failed.

    A row whose ``fs`` is not -1 is a URI: its object is read whole through ``filesystems[fs]``
    (at ``fs_path``) and decoded from memory; other rows are local paths, decoded as files.

    With ``mfcc`` (CPU clusters) the task also computes the segments' MFCCs, the local engine's
    function, and ships those (51 kB a segment) in ``mfcc`` instead of the samples (2.6 MB)."""
    rows = []
    for index, name, path, fs, fs_path in zip(batch["index"], batch["name"], batch["path"], batch["fs"],
                                              batch["fs_path"]):
        row = {"index": int(index), "name": name, "path": path, "n_segments": 0, "audio": b"", "seg": b"",
               "start": b"", "end": b"", "duration": math.nan, "fingerprint": None, "mfcc": b"", "error": ""}
        try:
            source = Path(path) if fs < 0 else \
                AudioBytes(path, read_bytes(RemoteFile(path, filesystems[fs], fs_path)))
            segments = list(file_segments(source, settings))
            audio = np.stack([seg.audio.astype(np.float32, copy=False) for seg, _, _ in segments])
            if mfcc:
                row["mfcc"] = _as_bytes(compute_mfcc(audio, settings.config))
            row.update(n_segments=len(segments), audio=b"" if mfcc else _as_bytes(audio),
                       seg=_as_bytes(np.array([seg.index for seg, _, _ in segments], dtype=np.int64)),
                       start=_as_bytes(np.array([seg.start_time for seg, _, _ in segments], dtype=np.float64)),
                       end=_as_bytes(np.array([seg.end_time for seg, _, _ in segments], dtype=np.float64)),
                       duration=float(segments[-1][2]))
            first = segments[0][0]
            if settings.fingerprint and first.index == 0:
                row["fingerprint"] = segment_fingerprint(first, settings.config.sample_rate)  # None: no libchromaprint
        except Exception as exc:  # a bad file is a row with its reason, never a crashed task
            log.debug("decoding %s failed", path, exc_info=True)
            row["error"] = _failure(exc)
        rows.append(row)
    return pd.DataFrame(rows)


class EmbedFiles:
    """The actor stage: MFCCs and the model's outputs for the decoded files of a batch.

    The model is built once, when the actor starts, from the checkpoint shipped to it
    (``shipped``: a one-item list holding its object reference, which the driver keeps alive,
    so a restarted actor finds it again)."""

    def __init__(self, shipped: list, device: str, batch_size: int):
        torch.set_num_threads(1)
        checkpoint: Checkpoint = ray.get(shipped[0])
        self.device = torch.device(device)
        self.model = place_model(checkpoint.build_model(), self.device).eval()
        self.net = FastForward(self.model)  # the local engine's forward pass: the same numbers
        self.config: FeatureConfig = checkpoint.feature_config
        self.batch_size = batch_size
        # On a GPU the MFCC runs there too, a file's segments at once (dense kernels); on the CPU
        # it is the local engine's own function, so both engines give the same numbers.
        self.gpu_mfcc = MFCC(self.config).to(self.device).eval() if self.device.type == "cuda" else None

    def _forward(self, mfccs: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """MFCCs -> (probabilities (n, labels), embeddings (n, dim)), ``batch_size`` at a time."""
        outputs = [model_outputs(self.net, mfccs[start:start + self.batch_size], self.device)
                   for start in range(0, len(mfccs), self.batch_size)]
        return np.concatenate([p for p, _ in outputs]), np.concatenate([e for _, e in outputs])

    def _mfccs(self, row) -> list[np.ndarray]:
        if row.mfcc:  # computed in the decode task (CPU clusters)
            return list(np.frombuffer(row.mfcc, dtype=np.float32).reshape(int(row.n_segments), self.config.n_mfcc, -1))
        audio = np.frombuffer(row.audio, dtype=np.float32).reshape(int(row.n_segments), -1).copy()
        if self.gpu_mfcc is None:
            return list(compute_mfcc(audio, self.config))
        with torch.inference_mode():
            return list(self.gpu_mfcc(torch.from_numpy(audio).to(self.device)).cpu().numpy())

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        out = batch.drop(columns=["audio", "mfcc"]).assign(probs=b"", probabilities=b"", embedding=b"")
        mfccs: list[np.ndarray] = []
        owners: list[int] = []  # the batch row of each segment
        for i, row in enumerate(batch.itertuples(index=False)):
            if row.error:
                continue
            try:
                file_mfccs = self._mfccs(row)
            except Exception as exc:  # as the local engine: the file fails, the run goes on
                log.debug("the MFCC of %s failed", row.path, exc_info=True)
                out.iloc[i, out.columns.get_loc("error")] = _failure(exc)
                continue
            mfccs += file_mfccs
            owners += [i] * len(file_mfccs)
        if not mfccs:
            return out
        probs, embs = self._forward(mfccs)
        owner = np.asarray(owners)
        for i in np.unique(owner):
            mine = owner == i
            out.iat[i, out.columns.get_loc("probs")] = _as_bytes(probs[mine].astype(np.float32))
            out.iat[i, out.columns.get_loc("probabilities")] = _as_bytes(_mean(probs[mine]))
            out.iat[i, out.columns.get_loc("embedding")] = _as_bytes(_mean(embs[mine]))
        return out


def _mean(values: np.ndarray) -> np.ndarray:
    """The mean over segments as the local engine takes it: summed in float64, then float32."""
    total = values[0].astype(np.float64)
    for value in values[1:]:
        total = total + value.astype(np.float64)
    return (total / len(values)).astype(np.float32)


def _result(row, mode: str, labels: tuple[str, ...], audio_file: str, embeddings: bool) -> FileResult:
    """One output row -> the :class:`FileResult` the local engine would yield for the file."""
    if row.error:
        return FileResult.failed(audio_file, mode, labels, row.error)
    seg = np.frombuffer(row.seg, dtype=np.int64)
    probs = np.frombuffer(row.probs, dtype=np.float32).reshape(len(seg), len(labels))  # (n, 0) when headless
    start, end = np.frombuffer(row.start, dtype=np.float64), np.frombuffer(row.end, dtype=np.float64)
    segments = tuple(SegmentPrediction(int(seg[k]), float(start[k]), float(end[k]), probs[k].copy())
                     for k in range(len(seg)))
    return FileResult(
        audio_file=audio_file, mode=mode, labels=labels, duration=float(row.duration), segments=segments,
        probabilities=np.frombuffer(row.probabilities, dtype=np.float32).copy(),
        embedding=np.frombuffer(row.embedding, dtype=np.float32).copy() if embeddings else None,
        fingerprint=bytes(row.fingerprint) if isinstance(row.fingerprint, (bytes, bytearray)) else None,
    )


# Ray Data's per-dataset notes on stderr ("execution finished", "progress bars disabled")
_RAY_DATA_CHATTER = ("ray.data._internal.execution.streaming_executor", "ray.data._internal.progress")


def connect(address: str | None = None) -> None:
    """Join the Ray cluster at ``address`` (``auto``: the one started on this machine with
    ``ray start``), or start a local Ray instance without one; nothing when already connected."""
    if not ray.is_initialized():
        options = {"address": address} if address else {"num_cpus": usable_cores()}
        ray.init(include_dashboard=False, logging_level=logging.WARNING, **options)
    for chatty in _RAY_DATA_CHATTER:  # Ray Data re-creates its handlers per dataset; these loggers stay quiet
        logging.getLogger(chatty).setLevel(logging.ERROR)
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # the commands draw their own bar; stdout may hold a table
    context.print_on_execution_start = False


class RayPredictor:
    """:class:`~melodex.inference.predictor.Predictor`'s ``predict`` on a Ray cluster.

    Parameters
    ----------
    model : str, Path or Checkpoint
        A checkpoint, a run folder, ``training_outputs/latest``, or a checkpoint already loaded
        with :func:`~melodex.model.checkpoint.load_checkpoint`; loaded here once and shipped
        to every actor (the nodes need not read it).
    device : str
        ``auto`` (a GPU per actor when the cluster has GPUs, else CPUs), ``cpu`` or ``cuda``
        (a DeviceError when the cluster has no GPU).
    batch_size : int
        Segments per forward pass, and files per actor call.
    address : str, optional
        A running cluster (``auto``, ``ray://host:10001``, ``host:6379``); without it, a local
        Ray instance.
    actors : int, optional
        Actors in the pool (default: one per GPU, or one per ``CPUS_PER_ACTOR`` CPUs).
    """

    def __init__(self, model: str | Path | Checkpoint, *, device: str = "auto", batch_size: int = SEGMENT_BATCH,
                 address: str | None = None, actors: int | None = None):
        self.checkpoint = model if isinstance(model, Checkpoint) else load_checkpoint(model)
        self.labels: tuple[str, ...] = tuple(self.checkpoint.labels)
        self.batch_size = int(batch_size)
        connect(address)
        resources = ray.cluster_resources()
        gpus, cpus = int(resources.get("GPU", 0)), max(1, int(resources.get("CPU", 1)))
        if device.startswith("cuda") and not gpus:
            raise DeviceError(f"--device {device} was asked for, but the Ray cluster has no GPU")
        self.gpu = bool(gpus) and device != "cpu"
        self.device = "cuda" if self.gpu else "cpu"
        self.actors = actors or (gpus if self.gpu else max(1, cpus // CPUS_PER_ACTOR))
        self.cpus = cpus
        self.num_workers = cpus  # what the commands log as the decoding workers
        self.shipped = ray.put(self.checkpoint)

    def _dataset(self, files: list[Path | RemoteFile], settings: DecodeSettings):
        filesystems: dict[int, tuple[int, object]] = {}  # each distinct filesystem once; rows say which
        items = []
        for i, f in enumerate(files):
            if isinstance(f, RemoteFile):
                known = filesystems.setdefault(id(f.filesystem), (len(filesystems), f.filesystem))[0]
                items.append({"index": i, "name": f.uri, "path": f.uri, "fs": known, "fs_path": f.path})
            else:
                items.append({"index": i, "name": str(f), "path": str(Path(f).absolute()), "fs": -1,
                              "fs_path": ""})
        blocks = min(len(items), max(2 * self.cpus, math.ceil(len(items) / FILES_PER_BLOCK)))
        actor_resources = {"num_gpus": 1, "num_cpus": 1} if self.gpu else {"num_cpus": ACTOR_CPUS}
        return (ray.data.from_items(items, override_num_blocks=blocks)
                .map_batches(decode_files, fn_kwargs={"settings": settings,
                                                      "filesystems": [fs for _, fs in filesystems.values()],
                                                      "mfcc": not self.gpu},
                             batch_format="pandas", batch_size=None, num_cpus=DECODE_CPUS)
                .map_batches(EmbedFiles, batch_format="pandas", batch_size=self.batch_size,
                             fn_constructor_kwargs={"shipped": [self.shipped], "device": self.device,
                                                    "batch_size": self.batch_size},
                             compute=ray.data.ActorPoolStrategy(size=self.actors), **actor_resources))

    def _start(self, paths: Iterable, full: bool, hop_seconds: float | None, last: str, fingerprints: bool):
        """(files, decode settings) for a run; local paths, file:// URIs and other URIs alike."""
        if last not in LAST_POLICIES:
            raise ValueError(f"last must be one of {LAST_POLICIES}, not {last!r}")
        files = find_audio_sources(paths, missing="keep")
        log.debug("ray: %d files, %d actor(s) on %s, %d CPU(s) in the cluster", len(files), self.actors,
                  self.device, self.cpus)
        return files, DecodeSettings(self.checkpoint.feature_config, bool(full), hop_seconds, last,
                                     fingerprint=fingerprints)

    def predict(self, paths: Iterable[str | Path | RemoteFile], *, full: bool = False,
                hop_seconds: float | None = None, last: str = "pad", embeddings: bool = True,
                legacy: bool = False, fingerprints: bool = False) -> Iterator[FileResult]:
        """One :class:`FileResult` per audio file, in sorted-path order, as ``Predictor.predict``
        (``legacy`` is accepted and ignored: the reference path runs with ``--engine local``;
        ``fingerprints``: each file's audio fingerprint, computed in the decode tasks).
        ``paths`` may hold URIs (``s3://bucket/music``), listed and read through ``pyarrow.fs``."""
        files, settings = self._start(paths, full, hop_seconds, last, fingerprints)
        if not files:
            return
        mode = MODE_FULL if full else MODE_FIRST
        ready: dict[int, FileResult] = {}  # rows come as they finish; yield them in the files' order
        next_index = 0
        for batch in self._dataset(files, settings).iter_batches(batch_format="pandas", batch_size=None):
            for row in batch.itertuples(index=False):
                ready[int(row.index)] = _result(row, mode, self.labels, str(files[int(row.index)]), embeddings)
            while next_index in ready:
                yield ready.pop(next_index)
                next_index += 1
        if next_index != len(files):  # never drop a file silently
            raise RuntimeError(f"the Ray pipeline returned {next_index} of {len(files)} files")

    def write(self, paths: Iterable[str | Path | RemoteFile], sink: Callable[[list[FileResult]], list[dict]], *,
              full: bool = False, hop_seconds: float | None = None, last: str = "pad",
              files_per_call: int = 256, fingerprints: bool = True) -> Iterator[dict]:
        """Run ``sink`` on the cluster over the files' results, ``files_per_call`` at a time, and
        yield what it returns (one small dict per file, in the order they finish).

        ``sink`` is pickled to the write tasks: it writes the results somewhere every node
        reaches (a store's parts, see :mod:`melodex.library.staging`) and returns a summary, so
        the driver never holds the embeddings. Every file comes back through ``sink``, failed
        ones included (a FileResult with its ``error``); with ``fingerprints`` (the default, as
        indexing stores them) each result carries its file's audio fingerprint."""
        files, settings = self._start(paths, full, hop_seconds, last, fingerprints)
        if not files:
            return
        dataset = self._dataset(files, settings).map_batches(
            write_results, batch_format="pandas", batch_size=int(files_per_call), num_cpus=WRITE_CPUS,
            fn_kwargs={"sink": sink, "mode": MODE_FULL if full else MODE_FIRST, "labels": self.labels})
        count = 0
        for batch in dataset.iter_batches(batch_format="pandas", batch_size=None):
            for row in batch.to_dict("records"):
                count += 1
                yield row
        if count != len(files):  # never drop a file silently
            raise RuntimeError(f"the Ray pipeline returned {count} of {len(files)} files")


def write_results(batch: pd.DataFrame, sink: Callable[[list[FileResult]], list[dict]], mode: str,
                  labels: tuple[str, ...]) -> pd.DataFrame:
    """The sink stage: a batch of rows as FileResults (named as the files were given), to ``sink``."""
    results = [_result(row, mode, labels, str(row.name), True) for row in batch.itertuples(index=False)]
    return pd.DataFrame(sink(results))
