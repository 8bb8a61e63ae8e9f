"""Inference throughput against the raw-decode ceiling, and peak memory against the file count.

    python benchmarks/bench_inference.py            # 200 files for speed; RSS for 200 vs 2000
    python benchmarks/bench_inference.py --quick    # 50 files; RSS for 50 vs 200
    python benchmarks/bench_inference.py --no-rss --no-legacy --repeat 5 --compare-libsndfile
    python benchmarks/bench_inference.py --files 300 --rss-files 300 3000

Test data: 30-s 44.1 kHz stereo mp3s (a few distinct tones, copied up to the count), cached
in ``$TMPDIR/melodex-bench-mp3`` so later runs skip the encoding.

Every number is measured in the same run, over the same files:

* **decode ceiling**: ``soundfile.read`` of every file (decode only: no downmix, resampling,
  MFCC or model), in one process and in a pool of 2 processes;
* **inference**: first-30s mode on the CPU through :class:`melodex.inference.predictor.Predictor`
  (default settings, and the legacy one-file-at-a-time path), results written to a JSONL file
  as the CLI does;
* **steady state**: files/s between the moment the first tenth of the files is done and the
  moment nine tenths are, for the ceilings and for inference alike, so neither the start
  (pool or worker start-up, model loading, first batches) nor the drain at the end (one
  worker still busy while the other has nothing left) counts. ``seconds`` is the whole run;
* **CPU ms/file**: user + system time of the run and of its workers, per file, start-up
  included; **steady CPU ms/file**: the same between the first and the last tenth of the files
  (:class:`SteadyCPU`). Unlike wall time it hardly depends on what else the machine is doing
  (other virtual machines' load on a shared host, which moves the wall-time ratio of a pair by
  +-0.1), so the ratio of the ceiling's steady CPU to inference's projects what idle cores
  would give (printed under the table);
* **peak RSS**: the inference run in a child process, its resident memory plus all of its
  children's (the decoding workers), sampled every 20 ms; in separate runs, as sampling costs
  CPU that the throughput runs would lose.

Targets: inference in steady state >= 75% of the 2-process decode ceiling (issue 6/6 item 4);
peak RSS for the large count within 10% of the small one. ``MELODEX_NO_MPG123=1`` measures
inference with mp3 read through libsndfile only (see :mod:`melodex.audio.mpg123`).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DISABLE_ENV = "MELODEX_NO_MPG123"  # melodex.audio.mpg123.DISABLE_ENV (not imported: the child sets it)
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


class SteadyCPU:
    """CPU seconds (user + system) of this process and its live children (pool or decoding
    workers) between the completions that open and close the steady window of ``n`` files.

    Sampled twice per run, so it costs nothing measurable; unlike the whole run's CPU it leaves
    out start-up (imports, model loading, pool start) and the drain, and unlike wall time it
    hardly moves with what else the machine is doing.
    """

    def __init__(self, n: int):
        self.lo, self.hi = n // 10, n - 1 - n // 10
        self.marks: dict[int, float] = {}

    def done(self, count: int) -> None:
        """Call after each completion; ``count`` files are done."""
        if count - 1 in (self.lo, self.hi):
            import psutil

            me = psutil.Process()
            total = 0.0
            for proc in [me, *me.children(recursive=True)]:
                try:
                    times = proc.cpu_times()
                    total += times.user + times.system
                except psutil.Error:
                    pass
            self.marks[count - 1] = total

    def per_file(self) -> float | None:
        """Steady CPU seconds per file, or None when the window was too short to mark."""
        if len(self.marks) < 2 or self.hi <= self.lo:
            return None
        return (self.marks[self.hi] - self.marks[self.lo]) / (self.hi - self.lo)


def steady_rate(stamps: list[float]) -> float:
    """Files/s between the first tenth and the last tenth of ``stamps`` (completion times)."""
    stamps = sorted(stamps)
    lo, hi = len(stamps) // 10, len(stamps) - 1 - len(stamps) // 10
    if hi <= lo or stamps[hi] <= stamps[lo]:
        return len(stamps) / max(stamps[-1] - stamps[0], 1e-9)
    return (hi - lo) / (stamps[hi] - stamps[lo])


def decode_ceiling(paths: list[Path], processes: int) -> dict:
    """Wall and CPU seconds, and the steady rate, to ``sf.read`` every file with ``processes`` processes."""
    cpu, start = cpu_seconds(), time.perf_counter()
    stamps = []
    steady = SteadyCPU(len(paths))
    if processes <= 1:
        for p in paths:
            _read(p)
            stamps.append(time.perf_counter())
            steady.done(len(stamps))
    else:
        import multiprocessing as mp

        with mp.get_context("fork").Pool(processes) as pool:
            start = time.perf_counter()  # the pool's start-up is not decoding
            for _ in pool.imap_unordered(_read, paths, chunksize=1):
                stamps.append(time.perf_counter())
                steady.done(len(stamps))
    return {"seconds": stamps[-1] - start, "cpu": cpu_seconds() - cpu, "rate": steady_rate(stamps),
            "steady_cpu": steady.per_file()}


def run_inference(paths: list[Path], model: Path, out: Path, *, workers: int | None, legacy: bool) -> float:
    """Seconds, CPU seconds and steady files/s of Predictor.predict over ``paths`` (first-30s, CPU, to JSONL)."""
    import torch

    from melodex.inference.predictor import Predictor
    from melodex.inference.writers import get_writer

    kwargs = {} if workers is None else {"num_workers": workers}
    predictor = Predictor(model, device="cpu", **kwargs)
    n_ok = 0
    stamps = []
    steady = SteadyCPU(len(paths))
    cpu, start = cpu_seconds(), time.perf_counter()
    with get_writer("jsonl")(out, mode="first-30s") as writer:
        for result in predictor.predict(paths, legacy=legacy):
            writer.write_result(result)
            n_ok += result.ok
            stamps.append(time.perf_counter())
            steady.done(len(stamps))
    seconds = time.perf_counter() - start
    # the workers have been joined when predict() ends, so their CPU time is counted
    cpu = cpu_seconds() - cpu
    if n_ok != len(paths):
        raise SystemExit(f"only {n_ok} of {len(paths)} files succeeded")
    del torch
    return {"seconds": seconds, "cpu": cpu, "rate": steady_rate(stamps), "steady_cpu": steady.per_file()}


def child_main(args: argparse.Namespace) -> None:
    paths = make_corpus(args.child_files)
    workers = None if args.child_workers < 0 else args.child_workers
    timing = run_inference(paths, Path(args.model), Path(args.out), workers=workers, legacy=args.child_legacy)
    print(json.dumps(timing))


def measure_child(n: int, model: Path, workdir: Path, *, workers: int | None = None, legacy: bool = False,
                  env: dict[str, str] | None = None, rss: bool = False) -> dict:
    """Run inference over ``n`` files in a child process; its time, and with ``rss`` its peak RSS
    (with children). Sampling the RSS costs ~1.3 ms of CPU every 20 ms (listing the child's
    processes), which would be taken from the run it measures, so the throughput runs skip it."""
    import psutil

    cmd = [sys.executable, __file__, "--child-files", str(n), "--model", str(model),
           "--out", str(workdir / f"out-{n}.jsonl"), "--child-workers", str(-1 if workers is None else workers)]
    if legacy:
        cmd.append("--child-legacy")
    env = dict(os.environ, PYTHONPATH=str(ROOT), OPENBLAS_NUM_THREADS="1", **(env or {}))
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, env=env, text=True)
    parent = psutil.Process(proc.pid)
    peak = 0
    while rss and proc.poll() is None:
        try:
            procs = [parent] + parent.children(recursive=True)
            resident = 0
            for p in procs:
                try:
                    resident += p.memory_info().rss
                except psutil.Error:
                    pass
            peak = max(peak, resident)
        except psutil.Error:
            pass
        time.sleep(0.02)
    out = proc.stdout.read()
    proc.wait()
    if proc.returncode != 0:
        raise SystemExit(f"benchmark child failed ({proc.returncode})")
    return {**json.loads(out.strip().splitlines()[-1]), "peak_rss": peak if rss else None}


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
    parser.add_argument("--repeat", type=int, default=3,
                        help="ceiling + inference pairs; the ratio's median is the result (default 3)")
    parser.add_argument("--compare-libsndfile", action="store_true",
                        help=f"also run inference with {DISABLE_ENV}=1 (mp3 through libsndfile only) in each pair")
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
        ratios, ratios_sndfile, cpu_ratios = [], [], []
        for rep in range(args.repeat):  # ceiling and inference side by side, so load changes hit both
            ceiling2 = decode_ceiling(paths, 2)
            infer = measure_child(n, model, workdir)
            ratios.append(infer["rate"] / ceiling2["rate"])
            if infer["steady_cpu"] and ceiling2["steady_cpu"]:
                cpu_ratios.append(ceiling2["steady_cpu"] / infer["steady_cpu"])
            rows += [(f"sf.read ceiling, 2 processes #{rep + 1}", ceiling2),
                     (f"infer, default ({default_workers} workers) #{rep + 1}", infer)]
            if args.compare_libsndfile:
                plain = measure_child(n, model, workdir, env={DISABLE_ENV: "1"})
                ratios_sndfile.append(plain["rate"] / ceiling2["rate"])
                rows.append((f"infer, {DISABLE_ENV}=1 #{rep + 1}", plain))
        if not args.no_legacy:
            rows.append(("infer, --use-legacy", measure_child(n, model, workdir, legacy=True)))

        print(f"\nfirst-30s inference on the CPU, {n} files of 30 s (44.1 kHz stereo mp3)\n")
        print(f"{'run':<42} {'seconds':>8} {'steady files/s':>15} {'vs 2-proc ceiling':>18} {'CPU ms/file':>12}"
              f" {'steady CPU ms/file':>19}")
        reference = next(m for name, m in rows if name.startswith("sf.read ceiling, 2"))  # the first pair's
        for name, m in rows:
            reference = m if name.startswith("sf.read ceiling, 2") else reference
            steady = f"{1000 * m['steady_cpu']:19.1f}" if m.get("steady_cpu") else f"{'-':>19}"
            print(f"{name:<42} {m['seconds']:8.2f} {m['rate']:15.1f} {m['rate'] / reference['rate']:17.0%}"
                  f" {1000 * m['cpu'] / n:12.1f} {steady}")
        print(f"\nsteady-state inference / 2-process sf.read ceiling, median of {len(ratios)}: "
              f"{statistics.median(ratios):.2f} (each: {', '.join(f'{r:.2f}' for r in ratios)}; target >= 0.75)")
        if ratios_sndfile:
            print(f"the same with mp3 read through libsndfile only: {statistics.median(ratios_sndfile):.2f} "
                  f"(each: {', '.join(f'{r:.2f}' for r in ratios_sndfile)})")
        ratio = statistics.median(m["cpu"] for name, m in rows if name.startswith("infer, default")) / ceiling1["cpu"]
        print(f"CPU per file over the whole run (start-up included), inference / sf.read: {ratio:.2f}")
        if cpu_ratios:
            print(f"steady-state CPU per file, 2-process sf.read / inference, median of {len(cpu_ratios)}: "
                  f"{statistics.median(cpu_ratios):.2f} (each: {', '.join(f'{r:.2f}' for r in cpu_ratios)}): "
                  f"the steady-state ratio {min(cores, 2)} otherwise idle cores would give")
        print(f"load average after: {os.getloadavg()[0]:.1f} (other work on the machine slows every row alike)")
        if args.no_rss:
            return 0
        small, large = args.rss_files
        rss_small = measure_child(small, model, workdir, rss=True)
        rss_large = measure_child(large, model, workdir, rss=True)
        print(f"\npeak RSS of an inference run, main process + workers (default settings)\n")
        print(f"{'files':>6} {'peak RSS (MiB)':>15} {'files/s':>8} {'vs ' + str(small) + ' files':>14}")
        for count, m in ((small, rss_small), (large, rss_large)):
            print(f"{count:6d} {m['peak_rss'] / 2**20:15.0f} {count / m['seconds']:8.1f} "
                  f"{m['peak_rss'] / rss_small['peak_rss']:14.2f}")
        print("\ntargets: 2 workers >= 60% of the decode ceiling; large-count RSS within 10% of small-count RSS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
