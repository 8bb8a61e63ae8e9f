"""Kill -9 and full disks: nothing is lost, nothing half-written counts as done.

``preprocess``, ``index`` and ``train`` are killed with SIGKILL part-way (a real subprocess, its
whole process group, so decoding workers die too), then run again: every item ends up exactly
once and the final outputs equal an uninterrupted run's. ``infer --resume`` after SIGKILL is
covered by tests/test_inference.py::test_resume_after_sigkill_gives_every_file_once.

A full disk is a real 128 KiB tmpfs when this process may mount one (root on Linux); otherwise
those tests skip, and :func:`test_full_disk_everywhere` still simulates ENOSPC by patching
``os.fsync``. Either way the command exits 2 with one line naming the file and saying "no space
left on device", and the outputs of the previous run are intact.
"""

from __future__ import annotations

import csv
import errno
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from melodex.cli import main
from melodex.features.cache import FeatureCache
from melodex.library.store import LibraryStore
from tests import nasty
from tests.conftest import ROOT, signal_when

N_FILES = 60


@pytest.fixture(scope="module")
def checkpoint(tiny_checkpoint_factory) -> Path:
    # The default model: its 512-d embeddings are what fill the 128 KiB disk, and its speed is what
    # lets a run be killed part-way.
    return tiny_checkpoint_factory(["Folk", "Pop", "Rock"])


@pytest.fixture(scope="module")
def music(tmp_path_factory) -> Path:
    """A folder-per-label dataset of short clips: ``music/<a|b>/NN.wav``."""
    root = tmp_path_factory.mktemp("music")
    for i in range(N_FILES):
        nasty._write(root / "ab"[i % 2] / f"{i:02d}.wav", nasty.tone(0.5, 8000, freq=150 + 15 * i, seed=i), 8000)
    return root


def _env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(ROOT), OPENBLAS_NUM_THREADS="1")


def kill_when(args: list[str], ready: Callable[[], bool], timeout: float = 120) -> None:
    """Start ``python *args``, SIGKILL its process group once ``ready()`` holds; fail if it ended first."""
    signal_when(args, ready, signal.SIGKILL, timeout)


def _lines(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


# ----------------------------------------------------------------------------- SIGKILL, resume


def test_preprocess_killed_then_resumed_equals_an_uninterrupted_run(music, tmp_path):
    killed, clean = tmp_path / "killed", tmp_path / "clean"
    args = ["-m", "melodex", "preprocess", "--data_dir", str(music), "--kind", "folder", "--workers", "2", "-q"]
    kill_when(args + ["--cache_dir", str(killed)], lambda: _lines(killed / "index.csv") > 6)
    assert 6 < _lines(killed / "index.csv") <= N_FILES  # header + some tracks, perhaps not all
    assert main(args[2:] + ["--cache_dir", str(killed)]) == 0
    assert main(args[2:] + ["--cache_dir", str(clean)]) == 0

    rows = list(csv.reader((killed / "index.csv").open()))
    keys = [row[0] for row in rows[1:]]
    assert rows[0] == ["key", "seconds"] and len(keys) == len(set(keys)) == N_FILES  # each track once
    assert not list(killed.rglob("*.tmp"))  # no temporary file left behind
    a, b = FeatureCache(killed), FeatureCache(clean)
    assert a.seconds() == b.seconds()
    for key in keys:
        np.testing.assert_array_equal(a.get(key), b.get(key))


def test_index_killed_then_rerun_equals_an_uninterrupted_run(music, checkpoint, tmp_path):
    killed, clean = tmp_path / "killed", tmp_path / "clean"
    args = ["-m", "melodex", "index", "--audio", str(music), "--model", str(checkpoint), "--num-workers", "1",
            "--device", "cpu", "--part-size", "3", "-q"]
    parts = killed / "parts"
    kill_when(args + ["--store", str(killed)], lambda: parts.is_dir() and len(list(parts.glob("*.parquet"))) >= 3)
    before = len(LibraryStore(killed))
    assert 9 <= before < N_FILES and before % 3 == 0  # whole parts only; the one in flight is not there
    assert main(args[2:] + ["--store", str(killed)]) == 0
    assert main(args[2:] + ["--store", str(clean)]) == 0

    a, b = LibraryStore(killed), LibraryStore(clean)
    ta, tb = a.tracks(), b.tracks()
    assert len(ta) == len(set(ta["path"])) == N_FILES  # each file once
    order_a, order_b = np.argsort(ta["path"].to_numpy()), np.argsort(tb["path"].to_numpy())
    assert list(ta["path"].iloc[order_a]) == list(tb["path"].iloc[order_b])
    assert list(ta["predicted_label"].iloc[order_a]) == list(tb["predicted_label"].iloc[order_b])
    np.testing.assert_allclose(a.embeddings()[order_a], b.embeddings()[order_b], atol=1e-5)


def _history(run: Path) -> list[dict[str, str]]:
    with open(run / "history.csv", newline="") as handle:
        return [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(handle)]


@pytest.mark.slow  # three training processes: about a minute on a busy 2-core machine
def test_training_killed_then_resumed_equals_an_uninterrupted_run(tmp_path):
    from tests._helpers_trainer import make_fma_fixture

    data = make_fma_fixture(tmp_path / "fma")
    cache = tmp_path / "cache"
    assert main(["preprocess", "--data_dir", str(data), "--cache_dir", str(cache), "--workers", "1", "-q"]) == 1
    common = [str(ROOT / "train.py"), "--data_dir", str(data), "--epochs", "4", "--batch_size", "4", "--seed", "3",
              "--device", "cpu", "--cache_dir", str(cache), "--num_workers", "0", "-q"]
    killed_root, clean_root = tmp_path / "killed", tmp_path / "clean"

    def an_epoch_done() -> bool:
        runs = [p for p in killed_root.glob("20*") if p.is_dir()]
        # epoch 1 is saved (history line, then train_state.pth); a run killed before its first
        # state has nothing to resume and says so ("no train_state.pth ... nothing to resume")
        return bool(runs) and _lines(runs[0] / "history.csv") >= 2 and (runs[0] / "train_state.pth").is_file()

    kill_when(common + ["--output_dir", str(killed_root)], an_epoch_done, timeout=300)
    (killed,) = [p for p in killed_root.glob("20*") if p.is_dir()]
    assert not (killed / "classification_report.txt").exists()  # the run had not finished
    resumed = subprocess.run([sys.executable, str(ROOT / "train.py"), "--resume", str(killed), "-q"], env=_env(),
                             capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    clean_run = subprocess.run([sys.executable, *common, "--output_dir", str(clean_root)], env=_env(),
                               capture_output=True, text=True, timeout=600)
    assert clean_run.returncode == 0, clean_run.stderr
    (clean,) = [p for p in clean_root.glob("20*") if p.is_dir()]

    assert [row["epoch"] for row in _history(killed)] == [str(e) for e in range(1, 5)]  # each epoch once
    assert _history(killed) == _history(clean)
    wa = torch.load(killed / "model_weights.pth", weights_only=True)["state_dict"]
    wb = torch.load(clean / "model_weights.pth", weights_only=True)["state_dict"]
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


# ----------------------------------------------------------------------------- full disk


@pytest.fixture
def small_disk(tmp_path) -> Path:
    """A 128 KiB tmpfs mounted at tmp_path/disk (skips where mounting is not allowed)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if not sys.platform.startswith("linux") or os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root on Linux; test_full_disk_everywhere simulates ENOSPC")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=128k", "tmpfs", str(disk)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.decode().strip()})")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def _one_line_no_space(capsys, path_part: str) -> None:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert "no space left on device" in err[0] and path_part in err[0] and "Traceback" not in err[0]


def _files(music: Path, n: int) -> list[str]:
    return [str(p) for p in sorted(music.glob("*/*.wav"))[:n]]


@pytest.mark.parametrize("fmt", ["json", "csv", "jsonl-resume"])
def test_infer_on_a_full_disk(fmt, small_disk, music, checkpoint, capsys):
    ext = fmt.split("-")[0]
    out = small_disk / f"results.{ext}"
    infer = ["infer", "--model", str(checkpoint), "--num-workers", "0", "--output", str(out), "-q"]
    assert main(infer + ["--audio", *_files(music, 2)]) == 0
    previous = out.read_bytes()
    capsys.readouterr()
    more = ["--resume"] if fmt == "jsonl-resume" else []
    assert main(infer + ["--audio", str(music)] + more) == 2
    _one_line_no_space(capsys, str(out))
    if ext == "json":
        assert out.read_bytes() == previous  # replaced only by a complete document
        assert not [p for p in small_disk.iterdir() if p.name.endswith(".tmp")]
    elif ext == "jsonl":
        data = out.read_bytes()
        assert data.startswith(previous)  # earlier lines untouched; a cut last line is dropped on resume
    else:  # csv streams: the previous file is replaced by design; what is there is whole rows or a cut last one
        assert out.read_text().startswith("audio_file,predicted_label,confidence,embedding\n")


def test_index_on_a_full_disk_keeps_the_parts_written(small_disk, music, checkpoint, capsys):
    store = small_disk / "lib"
    index = ["index", "--store", str(store), "--model", str(checkpoint), "--num-workers", "0", "--device", "cpu",
             "--part-size", "4", "-q"]
    assert main(index + ["--audio", *_files(music, 4)]) == 0
    first = LibraryStore(store).embeddings()
    capsys.readouterr()
    assert main(index + ["--audio", str(music)]) == 2
    _one_line_no_space(capsys, str(store / "parts"))
    after = LibraryStore(store)
    assert len(after) % 4 == 0 and 4 <= len(after) < N_FILES  # whole parts only
    np.testing.assert_array_equal(after.embeddings()[:4], first)
    assert not list((store / "parts").glob(".*.tmp"))


def test_preprocess_on_a_full_disk_keeps_what_was_cached(small_disk, music, capsys):
    cache = small_disk / "cache"
    pre = ["preprocess", "--data_dir", str(music), "--kind", "folder", "--cache_dir", str(cache), "--workers", "1",
           "-q"]
    assert main(pre) == 2
    _one_line_no_space(capsys, str(cache))
    done = FeatureCache(cache)
    keys = list(done.seconds())
    assert keys and len(keys) < N_FILES
    assert all(done.get(k) is not None for k in keys)  # every key listed is complete
    assert not list(cache.rglob(".*.tmp"))


def test_full_disk_everywhere(music, checkpoint, tmp_path, monkeypatch, capsys):
    """Without a tmpfs: fsync raising ENOSPC in every atomic write (JSON output, store part, MFCC)."""
    import melodex.util.atomic

    out = tmp_path / "r.json"
    infer = ["infer", "--model", str(checkpoint), "--num-workers", "0", "--output", str(out), "-q"]
    assert main(infer + ["--audio", *_files(music, 2)]) == 0
    previous = out.read_bytes()
    capsys.readouterr()

    def full(_fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(melodex.util.atomic.os, "fsync", full)
    assert main(infer + ["--audio", *_files(music, 4)]) == 2
    _one_line_no_space(capsys, str(out))
    assert out.read_bytes() == previous and json.loads(previous)["audio_files"]
    assert main(["index", "--store", str(tmp_path / "lib"), "--model", str(checkpoint), "--audio",
                 *_files(music, 2), "--num-workers", "0", "-q"]) == 2
    _one_line_no_space(capsys, str(tmp_path / "lib" / "parts"))
    assert len(LibraryStore(tmp_path / "lib")) == 0
    assert main(["preprocess", "--data_dir", str(music), "--kind", "folder", "--cache_dir", str(tmp_path / "c"),
                 "--workers", "1", "-q"]) == 2
    _one_line_no_space(capsys, str(tmp_path / "c"))
    assert not list(tmp_path.rglob(".*.tmp"))


def test_reembed_killed_then_rerun_completes(music, checkpoint, tiny_checkpoint_factory, tmp_path):
    from melodex.model.checkpoint import load_checkpoint, model_fingerprint

    other = tiny_checkpoint_factory(["Jazz", "Rock"])
    store, clean = tmp_path / "killed", tmp_path / "clean"
    common = ["--audio", str(music), "--num-workers", "1", "--device", "cpu", "--part-size", "3", "-q"]
    assert main(["index", "--store", str(store), "--model", str(checkpoint), *common]) == 0
    staging = store / "_reembed"
    args = ["-m", "melodex", "index", "--store", str(store), "--model", str(other), "--reembed", *common]
    kill_when(args, lambda: staging.is_dir() and len(list(staging.rglob("batch-*.arrow"))) >= 3)
    old, new = (model_fingerprint(load_checkpoint(m)) for m in (checkpoint, other))
    half = LibraryStore(store)
    assert set(half.models()) == {old} and set(half.tracks()["model_fingerprint"]) == {old}  # never a mix
    assert len(half) == N_FILES
    assert main(args[2:]) == 0  # the rerun embeds only what was not staged, then swaps
    assert main(["index", "--store", str(clean), "--model", str(other), *common]) == 0
    a, b = LibraryStore(store), LibraryStore(clean)
    ta, tb = a.tracks(), b.tracks()
    assert len(ta) == len(set(ta["path"])) == N_FILES and set(ta["model_fingerprint"]) == {new}
    order_a, order_b = np.argsort(ta["path"].to_numpy()), np.argsort(tb["path"].to_numpy())
    assert list(ta["predicted_label"].iloc[order_a]) == list(tb["predicted_label"].iloc[order_b])
    np.testing.assert_allclose(a.embeddings()[order_a], b.embeddings()[order_b], atol=1e-5)
    assert not staging.exists() and not list(store.rglob("*.tmp"))


# ----------------------------------------------------------------------------- a worker killed outright


def _die_on_third(item: int) -> int:
    if item == 3:
        os.kill(os.getpid(), signal.SIGKILL)  # as the OOM killer ends a process: no exception, no word
    return item * 2


def test_a_pool_worker_killed_outright_is_one_error_not_a_broken_pool_traceback():
    from melodex.errors import WorkerError
    from melodex.util.processes import ordered_map

    with pytest.raises(WorkerError, match="a worker process died"):
        list(ordered_map(_die_on_third, range(8), workers=2))
    assert list(ordered_map(_die_on_third, [0, 1, 2], workers=2)) == [0, 2, 4]


def test_infer_whose_decoding_worker_is_killed_says_so_in_one_line_and_keeps_the_results(
        music, checkpoint, tmp_path, monkeypatch, capsys):
    """A decoding worker killed outright (the OOM killer's SIGKILL) ends infer with one line that says
    what happened, exit status 2, the results before it complete in the JSONL, and --resume goes on."""
    from melodex.inference import stream

    files = _files(music, 12)
    doomed = Path(files[10]).name
    real = stream.file_items
    out, store = tmp_path / "results.jsonl", tmp_path / "store"
    done = {"out": lambda: len(out.read_text().splitlines()) if out.exists() else 0,
            "store": lambda: len(list((store / "parts").glob("*.parquet"))) if store.exists() else 0}
    watched = {"what": "out"}

    def file_items(index, path, settings):
        if Path(path).name == doomed and os.environ.get("MELODEX_TEST_PARENT") != str(os.getpid()):
            # in the worker only: wait until the command has written files 0-9 (the other worker
            # decodes them; a fixed sleep was too short on a loaded machine), then die holding file 10
            deadline = time.monotonic() + 60
            while done[watched["what"]]() < 10 and time.monotonic() < deadline:
                time.sleep(0.02)
            os.kill(os.getpid(), signal.SIGKILL)
        return real(index, path, settings)

    monkeypatch.setenv("MELODEX_TEST_PARENT", str(os.getpid()))
    monkeypatch.setattr(stream, "file_items", file_items)  # forked workers inherit it
    # one file a list: the worker that takes file 10 dies holding it alone, while the other worker
    # hands on every file before it (and file 11, which must not be written out of order)
    infer = ["infer", "--model", str(checkpoint), "--num-workers", "2", "--batch-size", "1",
             "--output", str(out), "-q", "--audio", *files]
    assert main(infer) == 2
    err = capsys.readouterr().err
    assert "a worker process died" in err and "--resume" in err and len(err.strip().splitlines()) == 1, err
    # whole lines, in order, every file before the one the worker died with
    assert [json.loads(line)["audio_file"] for line in out.read_text().splitlines()] == files[:10]
    monkeypatch.setattr(stream, "file_items", real)
    assert main([*infer, "--resume"]) == 0
    assert [json.loads(line)["audio_file"] for line in out.read_text().splitlines()] == files

    # index keeps the tracks embedded before the worker died (a part a track here), then adds the rest
    monkeypatch.setattr(stream, "file_items", file_items)
    watched["what"] = "store"  # forked after this, the workers see it
    index = ["index", "--model", str(checkpoint), "--num-workers", "2", "--batch-size", "1",
             "--part-size", "1", "--store", str(store), "-q", "--audio", *files]
    assert main(index) == 2
    err = capsys.readouterr().err
    assert "a worker process died" in err and len(err.strip().splitlines()) == 1, err
    assert sorted(LibraryStore(store).tracks()["path"]) == sorted(files[:10])
    monkeypatch.setattr(stream, "file_items", real)
    assert main(index) == 0
    assert sorted(LibraryStore(store).tracks()["path"]) == sorted(files)


def test_a_worker_killed_while_the_caller_is_busy_with_a_result_ends_at_the_callers_next_request(
        music, checkpoint, tmp_path, monkeypatch):
    """torch's DataLoader raises a worker's death in whatever the main thread runs; a death while the
    caller is busy with a result (writing a line, a store part) must not stop the caller's own code
    halfway with a bare RuntimeError: it ends the iteration, as a WorkerError, when the caller asks for
    the next result."""
    from melodex.errors import WorkerError
    from melodex.inference import stream
    from melodex.inference.predictor import Predictor

    files = _files(music, 8)
    pids = tmp_path / "pids"
    pids.mkdir()
    real = stream.file_items

    def file_items(index, path, settings):
        (pids / str(os.getpid())).touch()  # which processes decode (the workers)
        return real(index, path, settings)

    monkeypatch.setattr(stream, "file_items", file_items)  # forked workers inherit it
    predictor = Predictor(checkpoint, num_workers=2, batch_size=1)
    results = predictor.predict(files)
    first = next(results)
    assert first.error is None
    workers = [int(p.name) for p in pids.iterdir() if int(p.name) != os.getpid()]
    assert workers, "no worker decoded the first file"
    os.kill(workers[0], signal.SIGKILL)
    busy_until = time.monotonic() + 1.0  # the caller's own work, during which the SIGCHLD comes
    while time.monotonic() < busy_until:
        sum(range(1000))
    with pytest.raises(WorkerError, match="a worker process died"):
        list(results)


_PARENT = os.getpid()


def _extract_or_die(job, *args):
    """preprocess's extract_job, but a worker given track 17 is killed outright."""
    from melodex.training.preprocess import _real_extract_job

    if os.getpid() != _PARENT and job.path.endswith("17.wav"):
        os.kill(os.getpid(), signal.SIGKILL)
    return _real_extract_job(job, *args)


def test_preprocess_whose_worker_is_killed_says_so_in_one_line_and_resumes(music, tmp_path, monkeypatch, capsys):
    from melodex.training import preprocess

    monkeypatch.setattr(preprocess, "_real_extract_job", preprocess.extract_job, raising=False)
    monkeypatch.setattr(preprocess, "extract_job", _extract_or_die)  # a module-level function: it pickles
    args = ["preprocess", "--data_dir", str(music), "--kind", "folder", "--workers", "2", "-q",
            "--cache_dir", str(tmp_path / "cache")]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "a worker process died" in err and "resumes" in err and len(err.strip().splitlines()) == 1, err
    monkeypatch.undo()
    assert main(args) == 0
    assert _lines(tmp_path / "cache" / "index.csv") == N_FILES + 1
