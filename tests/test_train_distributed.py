"""Training under ``torchrun``: two CPU processes (gloo) write one run with a one-process run's fields.

``torchrun`` is started as ``python -m torch.distributed.run --standalone`` (a free port, one node),
as a user would type ``torchrun --standalone --nproc_per_node 2 ...``.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import test_train
from _helpers_trainer import BROKEN_KEY
from conftest import ROOT

from melodex.cli import script_main

fma_dir, cache_dir = test_train.fma_dir, test_train.cache_dir  # the train tests' tiny FMA and its cache
FILES = {"model_weights.pth", "params.json", "classification_report.txt", "history.csv", "train_state.pth"}


def _torchrun(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               OPENBLAS_NUM_THREADS="1")
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", *args]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False)


def _keys(data: dict, prefix: str = "") -> set[str]:
    """Every key of a nested dict, as dotted paths."""
    keys = set()
    for key, value in data.items():
        keys.add(prefix + key)
        if isinstance(value, dict):
            keys |= _keys(value, f"{prefix}{key}.")
    return keys


def _runs(out: Path) -> list[Path]:
    return [p for p in out.iterdir() if p.name != "latest"]


def _history(run: Path) -> list[dict[str, str]]:
    with open(run / "history.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def test_two_processes_write_one_run_with_the_fields_of_one_process_and_resume(fma_dir, cache_dir, tmp_path):
    # batch 1: the rank whose share holds the undecodable file takes a step fewer (DDP's Join lets the other finish)
    common = ["--data_dir", str(fma_dir), "--cache_dir", str(cache_dir), "--batch_size", "1", "--num_workers", "0"]
    # two processes first: they make the augmentation variants between them
    proc = _torchrun([str(ROOT / "train.py"), *common, "--epochs", "1", "--output_dir", "ddp"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert script_main("train", [*common, "--epochs", "1", "--output_dir", str(tmp_path / "one"), "-q"]) == 0

    ddp_runs, one_runs = _runs(tmp_path / "ddp"), _runs(tmp_path / "one")
    assert len(ddp_runs) == 1, "only rank 0 makes a run directory"
    ddp, one = ddp_runs[0], one_runs[0]
    assert os.readlink(tmp_path / "ddp" / "latest") == ddp.name
    assert {p.name for p in ddp.iterdir()} == {p.name for p in one.iterdir()} == FILES
    p_ddp, p_one = (json.loads((run / "params.json").read_text()) for run in (ddp, one))
    assert _keys(p_ddp) == _keys(p_one)
    assert (p_ddp["processes"], p_one["processes"]) == (2, 1)
    assert p_ddp["labels"] == p_one["labels"] and p_ddp["split_sizes"] == p_one["split_sizes"]
    assert p_ddp["normalization"] == p_one["normalization"]  # every rank computes it from the whole split
    assert p_ddp["result"]["epochs_run"] == 1 and 0 <= p_ddp["result"]["test_accuracy"] <= 1
    # the variants two processes wrote are complete and valid: one process reuses them all
    assert (p_ddp["augmentation"]["made"], p_one["augmentation"]["made"]) == (6, 0)
    assert p_one["augmentation"]["kept"] == 6 and p_ddp["augmentation"]["failed"] == 1
    # the file no rank could decode is named once, and in the results, whichever rank met it
    broken = f"{BROKEN_KEY}.mp3"
    assert proc.stderr.count(f"skipping a file that cannot be loaded: {fma_dir}") == 1 and broken in proc.stderr
    assert any(broken in r for r in p_ddp["result"]["failed_files"]["training"])
    # rank 1 logs nothing but errors: rank 0's lines appear once
    assert proc.stderr.count("run saved in") == 1 and "training in 2 processes (gloo, cpu" in proc.stderr
    report = [line.split(":")[0] for line in (ddp / "classification_report.txt").read_text().splitlines()[:5]]
    assert report == [line.split(":")[0] for line in (one / "classification_report.txt").read_text().splitlines()[:5]]
    assert [list(r) for r in _history(ddp)] == [list(r) for r in _history(one)]

    # --resume under torchrun (through python -m melodex): rank 0 reads the run, both continue it
    proc = _torchrun(["-m", "melodex", "train", "--output_dir", "ddp", "--resume", "--epochs", "2",
                      "--num_workers", "0"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"resuming run {ddp.name} after epoch 1 of 2" in proc.stderr
    assert _runs(tmp_path / "ddp") == [ddp]
    assert [r["epoch"] for r in _history(ddp)] == ["1", "2"]
    params = json.loads((ddp / "params.json").read_text())
    assert params["result"]["epochs_run"] == 2 and params["hyperparameters"]["epochs"] == 2


def test_a_torchrun_environment_that_names_no_process_is_one_line_and_exit_2(fma_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "5")
    status = script_main("train", ["--data_dir", str(fma_dir), "--output_dir", str(tmp_path / "out"), "-q"])
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1 and "RANK 5 with WORLD_SIZE 2" in err
    assert not (tmp_path / "out").exists()


def test_contrastive_under_torchrun_gathers_negatives_from_both_processes(tmp_path):
    from conftest import tone

    from melodex.audio.encode import write_audio

    music = tmp_path / "music"
    for i in range(10):
        write_audio(music / f"{i:02d}.wav", tone(2.0, 22050, freq=200 + 40 * i, channels=1, seed=i), 22050)
    common = ["--objective", "contrastive", "--audio", str(music), "--cache_dir", str(tmp_path / "cache"),
              "--batch_size", "4", "--epochs", "1", "--no-augment", "--num_workers", "0"]
    proc = _torchrun(["-m", "melodex", "train", *common, "--output_dir", "ddp"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert script_main("train", [*common, "--output_dir", str(tmp_path / "one"), "-q"]) == 0
    (ddp,), (one,) = _runs(tmp_path / "ddp"), _runs(tmp_path / "one")
    files = {"model_weights.pth", "params.json", "retrieval_report.txt", "history.csv", "train_state.pth"}
    assert {p.name for p in ddp.iterdir()} == {p.name for p in one.iterdir()} == files
    p_ddp, p_one = (json.loads((run / "params.json").read_text()) for run in (ddp, one))
    assert _keys(p_ddp) == _keys(p_one) and (p_ddp["processes"], p_one["processes"]) == (2, 1)
    assert p_ddp["hyperparameters"]["objective"] == "contrastive" and p_ddp["split_sizes"] == p_one["split_sizes"]
    # each view is scored against the other 7 views of its batch of 4 pairs, and under torchrun
    # against the other process's 8 views too
    assert (p_one["result"]["negatives_per_view"], p_ddp["result"]["negatives_per_view"]) == (6, 14)
    assert proc.stderr.count("run saved in") == 1 and "training in 2 processes (gloo, cpu" in proc.stderr
