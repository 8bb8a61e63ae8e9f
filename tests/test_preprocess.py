"""The MFCC cache: files, layout, resume after a finished or killed run, failures, parameters."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from _helpers_trainer import BROKEN_KEY, SHORT_KEY, make_fma_fixture

from melodex.audio.decode import load_audio
from melodex.audio.segments import first_segment
from melodex.cli import script_main
from melodex.datasets.base import Dataset, Track
from melodex.errors import CacheMismatchError
from melodex.features.cache import FeatureCache
from melodex.features.mfcc import FeatureConfig, compute_mfcc
from melodex.training.preprocess import preprocess_dataset


@pytest.fixture
def folder_dataset(tmp_path, make_audio) -> Dataset:
    """Four decodable wav files (one of 1 s) and one that is not audio, as a Dataset."""
    tracks = [
        Track(f"00000{i}", make_audio(f"a/00000{i}.wav", seconds=1.0 if i == 0 else 2.0, freq=220.0 * (i + 1)),
              "Pop", split="training")
        for i in range(4)
    ]
    broken = tmp_path / "a" / "000009.wav"
    broken.write_bytes(b"this is not a wav file" * 10)
    tracks.append(Track("000009", broken, "Rock", split="training"))
    return Dataset("folder", tmp_path / "a", tracks, ["Pop", "Rock"])


def test_cache_layout_values_and_failures(tmp_path, folder_dataset):
    cache_dir = tmp_path / "cache"
    summary = preprocess_dataset(folder_dataset, cache_dir, workers=2, progress=False)
    assert (summary.total, summary.cached_before, summary.written) == (5, 0, 4)
    assert [f.key for f in summary.failures] == ["000009"] and not summary.ok

    saved = json.loads((cache_dir / "features.json").read_text())
    assert saved["format"] == "melodex-mfcc-cache"
    assert FeatureConfig.from_dict(saved["feature_config"]) == FeatureConfig()

    # <cache>/<key[:3]>/<key>.npy, float32 (20, 640), equal to the documented chain
    first = np.load(cache_dir / "000" / "000001.npy")
    assert first.shape == (20, 640) and first.dtype == np.float32
    track = folder_dataset.tracks[1]
    expected = compute_mfcc(first_segment(load_audio(track.path, duration=30.0)).audio)
    np.testing.assert_allclose(first, expected, rtol=1e-5, atol=1e-4)

    cache = FeatureCache(cache_dir)
    assert cache.seconds()["000000"] == pytest.approx(1.0, abs=1e-3)  # the real length of the 1-s file
    assert cache.seconds()["000001"] == pytest.approx(2.0, abs=1e-3)
    assert cache.has("000002") and cache.get("000002").shape == (20, 640)
    assert not cache.has("000009") and cache.get("000009") is None

    failures = (cache_dir / "failures.csv").read_text().splitlines()
    assert failures[0] == "key,path,reason"
    assert len(failures) == 2 and failures[1].startswith(f"000009,{folder_dataset.tracks[4].path},")
    assert "cannot decode" in failures[1]


def test_second_run_skips_done_work_and_redoes_a_deleted_file(tmp_path, folder_dataset):
    cache_dir = tmp_path / "cache"
    preprocess_dataset(folder_dataset, cache_dir, workers=1, progress=False)
    again = preprocess_dataset(folder_dataset, cache_dir, workers=1, progress=False)
    assert (again.cached_before, again.written) == (4, 0)
    assert [f.key for f in again.failures] == ["000009"]  # still listed, not retried

    kept = cache_dir / "000" / "000003.npy"
    stamp = kept.stat().st_mtime_ns
    (cache_dir / "000" / "000002.npy").unlink()
    third = preprocess_dataset(folder_dataset, cache_dir, workers=1, progress=False)
    assert (third.cached_before, third.written) == (3, 1)
    assert (cache_dir / "000" / "000002.npy").is_file()
    assert kept.stat().st_mtime_ns == stamp

    retried = preprocess_dataset(folder_dataset, cache_dir, workers=1, progress=False, retry_failed=True)
    assert retried.written == 0 and [f.key for f in retried.failures] == ["000009"]
    rows = (cache_dir / "failures.csv").read_text().splitlines()
    assert len(rows) == 2  # one row per failed file, however often it was tried


def test_a_killed_run_leaves_nothing_that_counts_as_done(tmp_path, folder_dataset):
    cache_dir = tmp_path / "cache"
    preprocess_dataset(folder_dataset, cache_dir, workers=1, progress=False)
    index = cache_dir / "index.csv"
    lines = index.read_text().splitlines(keepends=True)
    # A kill can leave: a temporary file mid-write, an .npy whose index line was never
    # appended, and an index line cut short.
    stray = cache_dir / "000" / ".000001.npy.abc123.tmp"
    stray.write_bytes(b"\x93NUMPY half")
    dropped = [ln for ln in lines if ln.startswith("000002,")][0]
    cut = [ln for ln in lines if ln.startswith("000003,")][0]
    kept = [ln for ln in lines if ln not in (dropped, cut)]
    index.write_text("".join(kept) + cut[:8])  # "000003,2" without its newline
    cache = FeatureCache(cache_dir)
    assert not cache.has("000002") and cache.get("000002") is None
    assert not cache.has("000003")

    resumed = preprocess_dataset(folder_dataset, cache_dir, workers=1, progress=False)
    assert resumed.written == 2 and resumed.cached_before == 2
    assert not stray.exists()
    seconds = FeatureCache(cache_dir).seconds()
    assert seconds["000003"] == pytest.approx(2.0, abs=1e-3)  # not the truncated "2" of a cut line
    assert sorted(seconds) == ["000000", "000001", "000002", "000003"]
    assert all(line.count(",") == 1 for line in index.read_text().splitlines())


def test_cache_made_with_other_parameters_is_refused(tmp_path, folder_dataset):
    cache_dir = tmp_path / "cache"
    small = Dataset("one", folder_dataset.root, folder_dataset.tracks[1:2], ["Pop"])
    preprocess_dataset(small, cache_dir, workers=1, progress=False, config=FeatureConfig(n_mfcc=13))
    with pytest.raises(CacheMismatchError, match=r"n_mfcc=13 \(wanted 20\)"):
        preprocess_dataset(small, cache_dir, workers=1, progress=False)
    assert FeatureCache(cache_dir).get("000001") is None  # not handed out as 20-coefficient features
    assert np.load(cache_dir / "000" / "000001.npy").shape == (13, 640)


def test_cli_reports_failures_with_exit_1_and_resumes(tmp_path, capsys):
    data_dir = make_fma_fixture(tmp_path / "fma")
    cache_dir = tmp_path / "cache"
    argv = ["--data_dir", str(data_dir), "--cache-dir", str(cache_dir), "--workers", "2", "-q"]
    assert script_main("preprocess", argv) == 1
    err = capsys.readouterr().err
    assert "1 file failed" in err and str(cache_dir / "failures.csv") in err
    assert BROKEN_KEY in (cache_dir / "failures.csv").read_text()
    npys = sorted(p.stem for p in cache_dir.glob("*/*.npy"))
    assert SHORT_KEY in npys and BROKEN_KEY not in npys
    assert FeatureCache(cache_dir).seconds()[SHORT_KEY] == pytest.approx(1.0, abs=0.05)

    assert script_main("preprocess", argv[:-1]) == 1
    assert "0 written now" in capsys.readouterr().err


def test_cli_wrong_data_dir_is_one_line_and_exit_2(tmp_path, capsys):
    missing = tmp_path / "nowhere" / "fma_small"
    assert script_main("preprocess", ["--data_dir", str(missing), "--cache_dir", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "error:" in err and str(tmp_path / "nowhere") in err
    assert not (tmp_path / "c").exists()  # nothing written for a dataset that is not there


@pytest.mark.slow
def test_sigkilled_run_leaves_no_workers_no_lock_and_resumes(tmp_path, make_audio):
    """A real SIGKILL in the middle of a two-worker run (slow: it waits for files to appear)."""
    import signal
    import subprocess
    import sys
    import time

    import psutil
    from conftest import ROOT

    from melodex.datasets.fma import tracks_frame, write_tracks_csv

    records = {}
    for i in range(40):
        make_audio(f"fma_small/000/{i:06d}.mp3", seconds=2.0, freq=200.0 + 10 * i)
        records[i] = {("set", "split"): "training", ("set", "subset"): "small", ("track", "genre_top"): "Pop"}
    write_tracks_csv(tracks_frame(records), tmp_path / "fma_metadata" / "tracks.csv")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    cache = tmp_path / "cache"
    cmd = [sys.executable, str(ROOT / "preprocess_mfccs.py"), "--data_dir", str(tmp_path / "fma_small"),
           "--cache_dir", str(cache), "--workers", "2", "-q"]
    proc = subprocess.Popen(cmd, env=env, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while len(list(cache.glob("*/*.npy"))) < 5 and time.time() < deadline:
        time.sleep(0.05)
    children = psutil.Process(proc.pid).children(recursive=True)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    _, alive = psutil.wait_procs(children, timeout=10)
    assert not alive, "worker processes outlived their killed parent"

    again = subprocess.run(cmd, env=env, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr  # the dead run's lock did not survive it
    view = FeatureCache(cache)
    assert all(view.get(f"{i:06d}") is not None for i in range(40))
    assert not list(cache.glob("*/.*.tmp"))
