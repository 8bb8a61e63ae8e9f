"""Inference throughput against the raw-decode ceiling, and peak memory against the file count.

    python benchmarks/bench_inference.py            # 200 files for speed; RSS for 200 vs 2000
    python benchmarks/bench_inference.py --quick    # 50 files; RSS for 50 vs 200
    python benchmarks/bench_inference.py --files 300 --rss-files 300 3000

Test data: 30-s 44.1 kHz stereo mp3s (a few distinct tones, copied up to the count), cached
in ``$TMPDIR/melodex-bench-mp3`` so later runs skip the encoding.

Every number is measured in the same run:

* **decode ceiling**: ``soundfile.read`` of every file (decode only: no downmix, resampling,
  MFCC or model), in one process and in a pool of 2 processes;
* **inference**: first-30s mode on the CPU through :class:`melodex.inference.predictor.Predictor`
  (default settings, 2 workers, and the legacy one-file-at-a-time path), results written to
  a JSONL file as the CLI does; time from the first file handed in to the last result out
  (start-up and model loading excluded, as they are paid once);
* **CPU ms/file**: user + system time of the run and of its workers, per file. Unlike wall
  time it hardly depends on what else the machine is doing, so the ratio of inference to
  decode CPU projects what idle cores would give (printed under the table);
* **peak RSS**: the inference run in a child process, its resident memory plus all of its
  children's (the decoding workers), sampled every 20 ms.

Targets: inference with 2 workers >= 60% of the decode ceiling; peak RSS for the large count
within 10% of the small one.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DISTINCT = 8  # distinct recordings; the rest are byte copies (decoding cost is the same)


def make_corpus(n: int) -> list[Path]:
    """``n`` 30-s 44.1 kHz stereo mp3s in the cache directory, created on first use."""
    import numpy as np

    from melodex.audio.encode import write_audio

    cache = Path(os.environ.get("MELODEX_BENCH_DIR", Path(tempfile.gettempdir()) / "melodex-bench-mp3"))
    cache.mkdir(parents=True, exist_ok=True)
    sr = 44100
    t = np.arange(30 * sr) / sr
    paths = []
    for i in range(n):
        path = cache / f"{i:05d}.mp3"
        paths.append(path)
        if path.exists() and path.stat().st_size > 0:
            continue
        if i < DISTINCT:
            rng = np.random.default_rng(i)
            f = 110.0 * (i + 2)
            mono = 0.3 * np.sin(2 * np.pi * f * t) * (1 + 0.5 * np.sin(2 * np.pi * 0.5 * t))
            mono += 0.1 * np.sin(2 * np.pi * 2.01 * f * t) + 0.03 * rng.standard_normal(t.size)
            write_audio(path, np.stack([mono, 0.8 * mono], axis=1).astype(np.float32), sr)
        else:
            shutil.copyfile(paths[i % DISTINCT], path)
    return paths


def _read(path: Path) -> int:
    import soundfile as sf

    return sf.read(str(path), dtype="float32")[0].shape[0]


def cpu_seconds() -> float:
    """CPU time (user + system) of this process and of its children that have been waited for."""
    import resource

    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    return total


def decode_ceiling(paths: list[Path], processes: int) -> dict:
    """Wall and CPU seconds to ``sf.read`` every file with ``processes`` processes."""
    cpu, start = cpu_seconds(), time.perf_counter()
    if processes <= 1:
        for p in paths:
            _read(p)
        end = time.perf_counter()
    else:
        import multiprocessing as mp

        with mp.get_context("fork").Pool(processes) as pool:
            start = time.perf_counter()  # the pool's start-up is not decoding
            for _ in pool.imap_unordered(_read, paths, chunksize=4):
                pass
            end = time.perf_counter()
    return {"seconds": end - start, "cpu": cpu_seconds() - cpu}


def run_inference(paths: list[Path], model: Path, out: Path, *, workers: int | None, legacy: bool) -> float:
    """Seconds for Predictor.predict over ``paths`` (first-30s, CPU), results to JSONL."""
    import torch

    from melodex.inference.predictor import Predictor
    from melodex.inference.writers import get_writer

    kwargs = {} if workers is None else {"num_workers": workers}
    predictor = Predictor(model, device="cpu", **kwargs)
    n_ok = 0
    cpu, start = cpu_seconds(), time.perf_counter()
    with get_writer("jsonl")(out, mode="first-30s") as writer:
        for result in predictor.predict(paths, legacy=legacy):
            writer.write_result(result)
            n_ok += result.ok
    seconds = time.perf_counter() - start
    # the workers have been joined when predict() ends, so their CPU time is counted
    cpu = cpu_seconds() - cpu
    if n_ok != len(paths):
        raise SystemExit(f"only {n_ok} of {len(paths)} files succeeded")
    del torch
    return {"seconds": seconds, "cpu": cpu}


def child_main(args: argparse.Namespace) -> None:
    paths = make_corpus(args.child_files)
    workers = None if args.child_workers < 0 else args.child_workers
    timing = run_inference(paths, Path(args.model), Path(args.out), workers=workers, legacy=args.child_legacy)
    print(json.dumps(timing))


def measure_child(n: int, model: Path, workdir: Path, *, workers: int | None = None, legacy: bool = False) -> dict:
    """Run inference over ``n`` files in a child process; its time and peak RSS (with children)."""
    import psutil

    cmd = [sys.executable, __file__, "--child-files", str(n), "--model", str(model),
           "--out", str(workdir / f"out-{n}.jsonl"), "--child-workers", str(-1 if workers is None else workers)]
    if legacy:
        cmd.append("--child-legacy")
    env = dict(os.environ, PYTHONPATH=str(ROOT), OPENBLAS_NUM_THREADS="1")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, env=env, text=True)
    parent = psutil.Process(proc.pid)
    peak = 0
    while proc.poll() is None:
        try:
            procs = [parent] + parent.children(recursive=True)
            rss = 0
            for p in procs:
                try:
                    rss += p.memory_info().rss
                except psutil.Error:
                    pass
            peak = max(peak, rss)
        except psutil.Error:
            pass
        time.sleep(0.02)
    out = proc.stdout.read()
    if proc.returncode != 0:
        raise SystemExit(f"benchmark child failed ({proc.returncode})")
    return {**json.loads(out.strip().splitlines()[-1]), "peak_rss": peak}


def make_model(workdir: Path) -> Path:
    import torch

    from melodex.features.mfcc import FeatureConfig
    from melodex.model.checkpoint import save_checkpoint
    from melodex.model.cnn import GenreCNN, ModelConfig

    torch.manual_seed(0)
    labels = ["Electronic", "Experimental", "Folk", "Hip-Hop", "Instrumental", "International", "Pop", "Rock"]
    return save_checkpoint(workdir / "bench.pth", GenreCNN(ModelConfig(n_classes=8)), labels, FeatureConfig())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=200, help="files for the throughput runs (default 200)")
    parser.add_argument("--rss-files", type=int, nargs=2, default=[200, 2000], metavar=("SMALL", "LARGE"),
                        help="file counts whose peak RSS is compared (default 200 2000)")
    parser.add_argument("--quick", action="store_true", help="50 files; RSS for 50 vs 200")
    parser.add_argument("--no-legacy", action="store_true", help="skip the legacy path")
    parser.add_argument("--no-rss", action="store_true", help="skip the peak-RSS comparison")
    # internal: the child process that is measured
    parser.add_argument("--child-files", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--child-workers", type=int, default=-1, help=argparse.SUPPRESS)
    parser.add_argument("--child-legacy", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child_files:
        child_main(args)
        return 0
    if args.quick:
        args.files, args.rss_files = 50, [50, 200]

    from melodex.inference.predictor import default_num_workers

    cores = default_num_workers(os.cpu_count() or 1)
    default_workers = default_num_workers(4)
    needed = max([args.files] + ([] if args.no_rss else args.rss_files))
    print(f"load average before: {os.getloadavg()[0]:.1f}; cores: {cores}; default workers: {default_workers}; "
          f"preparing {needed} mp3s ...", flush=True)
    make_corpus(needed)
    paths = make_corpus(args.files)
    n = len(paths)
    with tempfile.TemporaryDirectory(prefix="melodex-bench-") as tmp:
        workdir = Path(tmp)
        model = make_model(workdir)
        decode_ceiling(paths[:8], 1)  # warm the page cache and the decoder
        rows: list[tuple[str, dict]] = []
        ceiling1 = decode_ceiling(paths, 1)
        rows.append(("sf.read ceiling, 1 process", ceiling1))
        ceiling2 = decode_ceiling(paths, 2)
        rows.append(("sf.read ceiling, 2 processes", ceiling2))
        rows.append((f"infer, default settings ({default_workers} workers)", measure_child(n, model, workdir)))
        two = measure_child(n, model, workdir, workers=2)
        rows.append(("infer, --num-workers 2", two))
        if not args.no_legacy:
            rows.append(("infer, --use-legacy", measure_child(n, model, workdir, legacy=True)))

        print(f"\nfirst-30s inference on the CPU, {n} files of 30 s (44.1 kHz stereo mp3)\n")
        print(f"{'run':<40} {'seconds':>8} {'files/s':>8} {'vs 1-proc ceiling':>18} {'vs 2-proc ceiling':>18}"
              f" {'CPU ms/file':>12}")
        for name, m in rows:
            print(f"{name:<40} {m['seconds']:8.2f} {n / m['seconds']:8.1f} {ceiling1['seconds'] / m['seconds']:17.0%}"
                  f" {ceiling2['seconds'] / m['seconds']:17.0%} {1000 * m['cpu'] / n:12.1f}")
        ratio = two["cpu"] / ceiling1["cpu"]
        print(f"\nCPU per file, inference (2 workers) / sf.read: {ratio:.2f}. With {cores} otherwise idle cores, "
              f"inference would run at about {min(cores, 2) / ratio:.0%} of the 1-process ceiling "
              f"and {1 / ratio:.0%} of the {min(cores, 2)}-process one.")
        print(f"load average after: {os.getloadavg()[0]:.1f} (other work on the machine slows every row alike)")
        if args.no_rss:
            return 0
        small, large = args.rss_files
        rss_small = measure_child(small, model, workdir)
        rss_large = measure_child(large, model, workdir)
        print(f"\npeak RSS of an inference run, main process + workers (default settings)\n")
        print(f"{'files':>6} {'peak RSS (MiB)':>15} {'files/s':>8} {'vs ' + str(small) + ' files':>14}")
        for count, m in ((small, rss_small), (large, rss_large)):
            print(f"{count:6d} {m['peak_rss'] / 2**20:15.0f} {count / m['seconds']:8.1f} "
                  f"{m['peak_rss'] / rss_small['peak_rss']:14.2f}")
        print("\ntargets: 2 workers >= 60% of the decode ceiling; large-count RSS within 10% of small-count RSS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
