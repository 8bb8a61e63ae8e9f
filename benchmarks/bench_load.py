"""Load: one ``melodex infer`` run over thousands of short files keeps memory flat.

Writes N short WAV files (0.5 s, 8 kHz mono) plus a few broken ones (empty, random bytes, text
named .wav), runs ``python -m melodex infer --output results.jsonl`` over the folder in a
subprocess and samples the peak resident memory (``VmHWM``) of the main process and of each
decoding worker. Prints, for each size, the files, the summary counts, the wall time, and the
peak RSS; then the ratio of the largest run's peaks to the smallest's (flat memory: about 1.0).

    python benchmarks/bench_load.py                     # 2,000 and 20,000 files
    python benchmarks/bench_load.py --sizes 500 5000 --workers 2 --keep DIR

The run's checks (exit status 1, one JSONL line per file, the summary line's counts) are made
here too, so the numbers printed belong to a correct run.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
BROKEN = {"empty.wav": b"", "noise.wav": None, "text.wav": b"not audio\n" * 50}


def _wav_bytes(seconds: float = 0.5, sr: int = 8000, freq: float = 330.0) -> bytes:
    import soundfile as sf

    t = np.arange(int(seconds * sr)) / sr
    buffer = io.BytesIO()
    sf.write(buffer, (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32), sr, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def make_folder(folder: Path, n_files: int, n_broken: int) -> Path:
    """``n_files`` good short WAVs in subfolders of 1,000, plus ``n_broken`` broken files."""
    folder.mkdir(parents=True, exist_ok=True)
    waves = [_wav_bytes(freq=200.0 + 37 * k) for k in range(8)]  # a few distinct sounds
    for i in range(n_files):
        sub = folder / f"{i // 1000:03d}"
        if i % 1000 == 0:
            sub.mkdir(exist_ok=True)
        (sub / f"{i:06d}.wav").write_bytes(waves[i % len(waves)])
    rng = np.random.default_rng(0)
    names = list(BROKEN)
    for j in range(n_broken):
        name = names[j % len(names)]
        data = BROKEN[name] if BROKEN[name] is not None else rng.bytes(4096)
        (folder / f"broken_{j:03d}_{name}").write_bytes(data)
    return folder


def tiny_model(path: Path) -> Path:
    import torch

    from melodex.features.mfcc import FeatureConfig
    from melodex.model.checkpoint import save_checkpoint
    from melodex.model.cnn import GenreCNN, ModelConfig

    torch.manual_seed(0)
    return save_checkpoint(path, GenreCNN(ModelConfig(n_classes=3)), ["Folk", "Pop", "Rock"], FeatureConfig())


def _hwm_mb(pid: int) -> float | None:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    match = re.search(r"VmHWM:\s+(\d+) kB", text)
    return int(match.group(1)) / 1024 if match else None


def run_infer(model: Path, folder: Path, out: Path, workers: int = 2) -> dict:
    """Run infer over ``folder`` in a subprocess; returns counts, wall seconds and peak RSS (MB)."""
    import psutil

    env = dict(os.environ, PYTHONPATH=str(ROOT), OPENBLAS_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "melodex", "infer", "--model", str(model), "--audio", str(folder),
           "--output", str(out), "--num-workers", str(workers), "--batch-size", "16", "-q"]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    main_peak, worker_peak = 0.0, 0.0
    parent = psutil.Process(proc.pid)
    while proc.poll() is None:
        main_peak = max(main_peak, _hwm_mb(proc.pid) or 0.0)
        try:
            for child in parent.children(recursive=True):
                worker_peak = max(worker_peak, _hwm_mb(child.pid) or 0.0)
        except psutil.Error:
            pass
        time.sleep(0.05)
    stderr = proc.stderr.read()
    proc.stderr.close()
    wall = time.perf_counter() - start
    match = re.search(r"(\d+) file\(s\): (\d+) ok, (\d+) failed", stderr)
    lines = out.read_bytes().count(b"\n") if out.exists() else 0
    return {"returncode": proc.returncode, "summary": match.group(0) if match else stderr[-300:],
            "total": int(match.group(1)) if match else None, "ok": int(match.group(2)) if match else None,
            "failed": int(match.group(3)) if match else None, "lines": lines, "wall_s": round(wall, 1),
            "peak_main_mb": round(main_peak, 1), "peak_worker_mb": round(worker_peak, 1)}


def check(result: dict, n_files: int, n_broken: int) -> None:
    """The run is correct: exit 1, every file one JSONL line, the summary counts right."""
    assert result["returncode"] == 1, result
    assert (result["total"], result["ok"], result["failed"]) == (n_files + n_broken, n_files, n_broken), result
    assert result["lines"] == n_files + n_broken, result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2000, 20000], help="files per run")
    parser.add_argument("--broken", type=int, default=12, help="broken files added to each run")
    parser.add_argument("--workers", type=int, default=2, help="decoding workers")
    parser.add_argument("--keep", type=Path, help="build in this folder and keep it (default: a temporary one)")
    args = parser.parse_args(argv)
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    sys.path.insert(0, str(ROOT))
    base = args.keep or Path(tempfile.mkdtemp(prefix="melodex-load-"))
    model = tiny_model(base / "tiny.pth")
    rows = []
    print(f"{'files':>7} {'broken':>6} {'ok':>7} {'failed':>6} {'wall s':>7} {'files/s':>8} "
          f"{'peak main MB':>12} {'peak worker MB':>14}")
    for n in args.sizes:
        folder = make_folder(base / f"music_{n}", n, args.broken)
        result = run_infer(model, folder, base / f"results_{n}.jsonl", args.workers)
        check(result, n, args.broken)
        rows.append(result)
        print(f"{n:>7} {args.broken:>6} {result['ok']:>7} {result['failed']:>6} {result['wall_s']:>7} "
              f"{(n + args.broken) / result['wall_s']:>8.0f} {result['peak_main_mb']:>12} {result['peak_worker_mb']:>14}",
              flush=True)
    if len(rows) > 1:
        first, last = rows[0], rows[-1]
        print(f"peak RSS ratio {args.sizes[-1]} vs {args.sizes[0]} files: main "
              f"{last['peak_main_mb'] / first['peak_main_mb']:.3f}, worker "
              f"{last['peak_worker_mb'] / max(first['peak_worker_mb'], 1e-9):.3f}")
    print(json.dumps(rows))
    if not args.keep:
        import shutil

        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
