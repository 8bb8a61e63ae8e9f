"""Load: one run over many short files ends with a correct summary and flat memory.

The default suite runs 150 files with a few broken ones (counts, one JSONL line per file). The
slow test runs 2,000 and then 20,000 files (plus broken ones) and checks that the peak RSS of
the main process and of the decoding workers grows by no more than the file list itself (under
3 kB per extra file); the same code prints the figures in ``python benchmarks/bench_load.py``.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from tests.conftest import ROOT


def _bench():
    spec = importlib.util.spec_from_file_location("bench_load", ROOT / "benchmarks" / "bench_load.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def bench():
    return _bench()


@pytest.fixture(scope="module")
def model(bench, tmp_path_factory) -> Path:
    return bench.tiny_model(tmp_path_factory.mktemp("model") / "tiny.pth")


def test_a_few_hundred_files_with_broken_ones_in_one_run(bench, model, tmp_path):
    folder = bench.make_folder(tmp_path / "music", 150, 6)
    out = tmp_path / "r.jsonl"
    result = bench.run_infer(model, folder, out, workers=2)
    bench.check(result, 150, 6)
    records = [json.loads(line) for line in out.read_text().splitlines()]
    names = [Path(r["audio_file"]).name for r in records]
    assert len(set(names)) == len(names) == 156
    failed = {Path(r["audio_file"]).name: r["error"] for r in records if "error" in r}
    assert sorted(failed) == sorted(f"broken_{j:03d}_{n}" for j, n in zip(range(6), list(bench.BROKEN) * 2))
    assert all(reason for reason in failed.values())


@pytest.mark.slow
def test_twenty_thousand_files_keep_memory_flat(bench, model, tmp_path):
    peaks = {}
    for n in (2000, 20000):
        folder = bench.make_folder(tmp_path / f"music_{n}", n, 12)
        result = bench.run_infer(model, folder, tmp_path / f"r_{n}.jsonl", workers=2)
        bench.check(result, n, 12)
        peaks[n] = result
    extra_files = 18000
    growth_main = (peaks[20000]["peak_main_mb"] - peaks[2000]["peak_main_mb"]) * 1024 / extra_files
    growth_worker = (peaks[20000]["peak_worker_mb"] - peaks[2000]["peak_worker_mb"]) * 1024 / extra_files
    # What may grow is the sorted list of paths (measured: about 1.8 kB per file in the main
    # process, 0.5 kB in a worker); no audio, MFCC or result is kept: one clip's MFCC is 50 kB.
    assert growth_main < 3.0 and growth_worker < 3.0, peaks  # kB per extra file
