"""Scaling out: the local engine against the Ray engine on this machine, where a file's CPU goes,
and what N nodes of C cores would do.

    python benchmarks/bench_scale.py                  # 60 files; projection for 1/4/16 nodes of 8/32 cores
    python benchmarks/bench_scale.py --files 200 --nodes 1 10 100 --cores 16 64
    python benchmarks/bench_scale.py --decode-cpus 1 0.5  # also try decode tasks that ask for half a CPU
    python benchmarks/bench_scale.py --index            # also whole `melodex index` runs, each engine
    python benchmarks/bench_scale.py --split-only         # only the per-stage CPU split (no Ray)

Test data: the 30-s 44.1 kHz stereo mp3s of ``bench_inference.py`` (cached in
``$TMPDIR/melodex-bench-mp3``), first-30s mode, an untrained default-size CNN on the CPU.

Every number comes from this run:

* **files/s**: ``Predictor.predict`` (the local engine: decoding worker processes, as many as
  cores) and ``RayPredictor.predict`` (``--engine ray`` on a local Ray instance with this
  machine's cores) over the same files; the Ray run counts the actor pool's start (once per
  command) but not ``ray.init`` (printed apart). A warm-up run of a few files goes first.
* **CPU ms per file**, one thread, in this process, each stage as ``infer`` runs it: decode
  (the first 30 s to native-rate mono: libmpg123's own mono mix where installed, else
  libsndfile and a numpy mean), resample (soxr HQ to 22050 Hz), MFCC, and the CNN forward
  (the Predictor's pass, batches of 8).
* **projection**: a node of C cores runs C / (CPU s per file) files/s at best; it is scaled by
  the Ray engine's efficiency measured here (its files/s over that ideal for this machine's
  cores), and, for GPU nodes, by moving MFCC + forward off the CPU (one actor per GPU).
  Ray Data has no central bottleneck for this embarrassingly parallel map, so nodes add up
  until the shared storage limits: ``index --engine ray`` has the nodes write the store's parts
  (the driver only renames them), while ``infer`` writes its one ordered output on the driver.
* **index** (``--index``): ``melodex index`` over the same files into a new store with each
  engine, the whole command (model load, parts, compaction); the Ray instance is already up.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_inference import make_corpus, make_model  # the same corpus and model


def cpu_split(paths: list[Path], model_path: Path, rounds: int = 3) -> dict[str, float]:
    """CPU seconds per file of each stage as ``infer`` runs it, one thread, in this process.

    decode: the first 30 s to native-rate mono the way :func:`melodex.audio.decode.load_audio`
    does it (libmpg123's own mono mix where the library is installed, else libsndfile and a
    numpy mix); resample: soxr HQ; MFCC: :func:`compute_mfcc`; forward: the Predictor's pass
    (:class:`FastForward` over the model placed as for inference), batches of 8. Each file's
    (each batch's) least time over ``rounds`` counts: other work on a machine only adds time.
    """
    import numpy as np
    import soundfile as sf
    import soxr
    import torch

    from melodex.audio.decode import load_audio
    from melodex.audio.segments import first_segment
    from melodex.features.mfcc import compute_mfcc
    from melodex.inference.fast_forward import FastForward
    from melodex.model.checkpoint import load_model
    from melodex.model.cnn import place_model

    torch.set_num_threads(1)
    model, ckpt = load_model(model_path, "cpu")
    forward = FastForward(place_model(model, "cpu").eval())
    cfg = ckpt.feature_config
    rates = [sf.info(str(path)).samplerate for path in paths]
    best = np.full((len(paths), 3), np.inf)  # decode, resample, MFCC
    mfccs = []
    for _ in range(rounds):
        mfccs = []
        for i, (path, native) in enumerate(zip(paths, rates)):
            t0 = time.process_time()
            audio = load_audio(path, duration=cfg.segment_seconds, sr=native)  # native rate: decode only
            t1 = time.process_time()
            audio = soxr.resample(audio, native, cfg.sample_rate, quality="HQ")
            t2 = time.process_time()
            segment = first_segment(audio, sr=cfg.sample_rate, window_seconds=cfg.segment_seconds)
            mfccs.append(compute_mfcc(segment.audio, cfg))
            t3 = time.process_time()
            best[i] = np.minimum(best[i], [t1 - t0, t2 - t1, t3 - t2])
    batches = [torch.from_numpy(np.stack(mfccs[start:start + 8])) for start in range(0, len(mfccs), 8)]
    forward_best = np.full(len(batches), np.inf)
    with torch.inference_mode():
        for _ in range(rounds):
            for b, batch in enumerate(batches):
                t0 = time.process_time()
                forward(batch)
                forward_best[b] = min(forward_best[b], time.process_time() - t0)
    decode, resample, mfcc = best.mean(axis=0)
    return {"decode": decode, "resample": resample, "MFCC": mfcc, "forward": forward_best.sum() / len(paths)}


def libsndfile_decode_cost(paths: list[Path], seconds: float, rounds: int = 3) -> float:
    """CPU seconds per file of the decode stage with libmpg123 turned off (libsndfile + numpy mix)."""
    import soundfile as sf

    from melodex.audio import mpg123
    from melodex.audio.decode import load_audio

    before = os.environ.get(mpg123.DISABLE_ENV)
    os.environ[mpg123.DISABLE_ENV] = "1"
    mpg123._library.cache_clear()
    try:
        rates = [sf.info(str(path)).samplerate for path in paths]
        best = [float("inf")] * len(paths)
        for _ in range(rounds):
            for i, (path, rate) in enumerate(zip(paths, rates)):
                t0 = time.process_time()
                load_audio(path, duration=seconds, sr=rate)
                best[i] = min(best[i], time.process_time() - t0)
        return sum(best) / len(paths)
    finally:
        if before is None:
            del os.environ[mpg123.DISABLE_ENV]
        else:
            os.environ[mpg123.DISABLE_ENV] = before
        mpg123._library.cache_clear()


def local_rate(paths: list[Path], model_path: Path, workers: int) -> float:
    from melodex.inference.predictor import Predictor

    predictor = Predictor(model_path, device="cpu", num_workers=workers)
    list(predictor.predict(paths[:4]))  # warm-up
    start = time.perf_counter()
    ok = sum(result.ok for result in predictor.predict(paths))
    seconds = time.perf_counter() - start
    assert ok == len(paths), f"{ok} of {len(paths)} files succeeded"
    return len(paths) / seconds


def ray_rate(paths: list[Path], model_path: Path, decode_cpus: float) -> float:
    from melodex.engines import ray_engine

    ray_engine.DECODE_CPUS = decode_cpus
    predictor = ray_engine.RayPredictor(model_path, device="cpu")
    list(predictor.predict(paths[:4]))  # warm-up: worker processes import melodex once
    start = time.perf_counter()
    ok = sum(result.ok for result in predictor.predict(paths))
    seconds = time.perf_counter() - start
    assert ok == len(paths), f"{ok} of {len(paths)} files succeeded"
    return len(paths) / seconds


def index_rate(paths: list[Path], model_path: Path, engine: str, workers: int) -> float:
    from melodex.cli import main as melodex
    from melodex.library.store import LibraryStore

    store = Path(tempfile.mkdtemp(prefix="melodex-bench-store-"))
    start = time.perf_counter()
    status = melodex(["index", "--audio", *map(str, paths), "--model", str(model_path), "--store", str(store),
                      "--no-tags", "-q", "--device", "cpu", "--num-workers", str(workers), "--engine", engine])
    seconds = time.perf_counter() - start
    assert status == 0 and len(LibraryStore(store)) == len(paths), f"index --engine {engine}: status {status}"
    shutil.rmtree(store)
    return len(paths) / seconds


def print_projection(split: dict[str, float], efficiency: float, nodes: list[int], cores: list[int]) -> None:
    per_file = sum(split.values())
    decode_only = split["decode"] + split["resample"]
    print(f"\nprojection (CPU {per_file * 1000:.1f} ms/file; Ray efficiency {efficiency:.2f} measured here)")
    print(f"{'nodes':>6} {'cores':>6} {'CPU nodes, files/s':>20} {'GPU nodes, files/s':>20} {'FMA full (106,574)':>20}")
    for n in nodes:
        for c in cores:
            cpu = n * c / per_file * efficiency
            gpu = n * c / decode_only * efficiency
            print(f"{n:>6} {c:>6} {cpu:>20,.0f} {gpu:>20,.0f} {106_574 / cpu / 60:>15.1f} min")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=60, help="files per throughput run (default 60)")
    parser.add_argument("--split-files", type=int, default=16, help="files for the CPU split (default 16)")
    parser.add_argument("--decode-cpus", type=float, nargs="+", default=[1.0],
                        help="CPUs each Ray decode task asks for; one Ray run per value (default 1)")
    parser.add_argument("--nodes", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--cores", type=int, nargs="+", default=[8, 32])
    parser.add_argument("--index", action="store_true", help="also time whole `melodex index` runs with each engine")
    parser.add_argument("--split-rounds", type=int, default=3, help="rounds of the split; each file's least time counts (default 3)")
    parser.add_argument("--split-only", action="store_true", help="print the CPU split and stop (no Ray)")
    args = parser.parse_args(argv)
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    from melodex.audio import mpg123
    from melodex.util.workers import usable_cores

    workdir = Path(os.environ.get("TMPDIR", "/tmp")) / "melodex-bench-scale"
    workdir.mkdir(parents=True, exist_ok=True)
    paths, model = make_corpus(args.files), make_model(workdir)
    cores = usable_cores()
    split = cpu_split(paths[:args.split_files], model, args.split_rounds)
    per_file = sum(split.values())
    print(f"{len(paths)} files, first 30 s, {cores} core(s); load average {os.getloadavg()[0]:.1f}\n\n"
          f"CPU per file, one thread (decode through {'libmpg123 mono mix' if mpg123.available() else 'libsndfile'}):")
    for stage, seconds in split.items():
        print(f"  {stage:<9} {seconds * 1000:7.1f} ms  {seconds / per_file:5.0%}")
    print(f"  {'total':<9} {per_file * 1000:7.1f} ms  -> ideal {cores / per_file:.1f} files/s on {cores} core(s)")
    if mpg123.available():
        plain = libsndfile_decode_cost(paths[:args.split_files], 30.0, args.split_rounds)
        print(f"  (decode without libmpg123, libsndfile + numpy mix: {plain * 1000:.1f} ms)")
    if args.split_only:
        return 0
    import ray

    from melodex.engines.ray_engine import connect

    rows = [("local engine", local_rate(paths, model, cores))]
    start = time.perf_counter()
    connect(None)
    started = time.perf_counter() - start
    for decode_cpus in args.decode_cpus:
        rows.append((f"ray engine, decode {decode_cpus:g} CPU", ray_rate(paths, model, decode_cpus)))
    indexed = [(f"index --engine {engine}", index_rate(paths, model, engine, cores))
               for engine in ("local", "ray")] if args.index else []
    ray.shutdown()
    ideal = cores / per_file
    print(f"\n{'engine':<28} {'files/s':>8} {'vs local':>9} {'vs ideal':>9}")
    for name, rate in rows:
        print(f"{name:<28} {rate:8.1f} {rate / rows[0][1]:9.2f} {rate / ideal:9.2f}")
    for name, rate in indexed:  # "vs local": against index --engine local
        print(f"{name:<28} {rate:8.1f} {rate / indexed[0][1]:9.2f} {rate / ideal:9.2f}")
    print(f"(ray.init of a local instance: {started:.1f} s, once per command)")
    print_projection(split, max(rate for _, rate in rows[1:]) / ideal, args.nodes, args.cores)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
