"""Training end to end: run directory and files, repeatability, resume, the cache, bad input."""

from __future__ import annotations

import csv
import json
import os
import re
from datetime import datetime
from pathlib import Path

import pytest
import torch
from _helpers_trainer import BROKEN_KEY, GENRES, LAYOUT, SHORT_KEY, interrupted_in_epoch, make_fma_fixture
from conftest import ROOT, run_script

from melodex.cli import script_main
from melodex.model.checkpoint import load_checkpoint, resolve_model_path
from melodex.training.config import TrainConfig
from melodex.training.trainer import train

RUN_NAME = re.compile(r"^\d{4}-\d{2}-\d{2}_\d{2}-\d{2}-\d{2}(_\d+)?$")
N_TRAIN = sum(split == "training" for _, _, split in LAYOUT)


@pytest.fixture(scope="module")
def fma_dir(tmp_path_factory) -> Path:
    return make_fma_fixture(tmp_path_factory.mktemp("fma"))


@pytest.fixture(scope="module")
def cache_dir(fma_dir, tmp_path_factory) -> Path:
    cache = tmp_path_factory.mktemp("cache") / "mfccs"
    assert script_main("preprocess", ["--data_dir", str(fma_dir), "--cache_dir", str(cache), "--workers", "1", "-q"]) == 1
    return cache


def _history(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "history.csv", newline="") as handle:
        return [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(handle)]


def _state(run_dir: Path) -> dict[str, torch.Tensor]:
    return torch.load(run_dir / "model_weights.pth", weights_only=True)["state_dict"]


def _without_run_name(report: str) -> str:
    return "\n".join(line for line in report.splitlines() if not line.startswith("run: "))


def _same_weights(a: Path, b: Path) -> bool:
    wa, wb = _state(a), _state(b)
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def test_train_script_writes_a_complete_run(fma_dir, tmp_path):
    proc = run_script([str(ROOT / "train.py"), "--data_dir", str(fma_dir), "--epochs", "2", "--batch_size", "4"],
                      cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "training_outputs"
    runs = [p for p in out.iterdir() if p.name != "latest"]
    assert len(runs) == 1 and RUN_NAME.match(runs[0].name)
    run = runs[0]
    assert (out / "latest").is_symlink() and os.readlink(out / "latest") == run.name
    assert resolve_model_path(out / "latest") == out / "latest" / "model_weights.pth"
    assert {p.name for p in run.iterdir()} == {"model_weights.pth", "params.json", "classification_report.txt",
                                               "history.csv", "train_state.pth"}

    # the undecodable file is named in a warning, and training went on
    broken = fma_dir / BROKEN_KEY[:3] / f"{BROKEN_KEY}.mp3"
    assert re.search(rf"skipping .*{re.escape(str(broken))}", proc.stderr)
    assert "epoch 2/2" in proc.stderr
    assert f"{SHORT_KEY}.mp3" not in proc.stderr  # the 1-second file trains, padded, without complaint

    params = json.loads((run / "params.json").read_text())
    assert {"hyperparameters", "features", "labels", "dataset", "split_sizes", "seed", "device", "versions",
            "model", "result"} <= params.keys()
    hyper = params["hyperparameters"]
    assert (hyper["epochs"], hyper["batch_size"], hyper["lr"], hyper["optimizer"]) == (2, 4, 1e-3, "Adam")
    assert params["labels"] == list(GENRES) and params["seed"] == 0 and params["device"] == "cpu"
    assert params["split_sizes"] == {"training": N_TRAIN, "validation": 3, "test": 3}
    assert params["dataset"]["data_dir"] == str(fma_dir)
    assert params["features"]["n_mfcc"] == 20 and params["features"]["n_frames"] == 640
    assert {"python", "torch", "numpy", "melodex"} <= params["versions"].keys()
    assert params["result"]["epochs_run"] == 2 and str(broken) in str(params["result"]["failed_files"])

    history = _history(run)
    assert [row["epoch"] for row in history] == ["1", "2"]
    assert set(history[0]) == {"epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy"}

    report = (run / "classification_report.txt").read_text()
    assert "test split" in report and "accuracy:" in report and "confusion matrix" in report
    for genre in GENRES:
        assert re.search(rf"^\s*{genre}\s+\d\.\d{{3}}\s+\d\.\d{{3}}\s+\d\.\d{{3}}\s+1$", report, re.MULTILINE)
        assert re.search(rf"^{genre}\s+\d+\s+\d+\s+\d+$", report, re.MULTILINE)  # a confusion-matrix row

    raw = torch.load(run / "model_weights.pth", weights_only=True)
    ckpt = load_checkpoint(run / "model_weights.pth")
    assert ckpt.labels == list(GENRES) and raw["metadata"]["run"] == run.name
    assert raw["metadata"]["epoch"] == params["result"]["best_epoch"]
    assert raw["metadata"]["val_accuracy"] == pytest.approx(params["result"]["best_val_accuracy"])
    model = ckpt.build_model()
    assert model(torch.zeros(2, 20, 640)).shape == (2, 3)
    assert float(model.feature_std.min()) > 0 and float(model.feature_mean.abs().sum()) > 0  # normalisation set
    state = torch.load(run / "train_state.pth", weights_only=True)
    assert state["epoch"] == 2 and "optimizer" in state


def test_same_seed_same_run_and_resume_equals_uninterrupted(fma_dir, cache_dir, tmp_path, capsys):
    out = tmp_path / "out"
    config = TrainConfig(data_dir=fma_dir, epochs=2, batch_size=4, seed=7, device="cpu", cache_dir=cache_dir,
                         output_dir=out, progress=False)
    first, second = train(config), train(config)
    assert first.run_dir != second.run_dir and RUN_NAME.match(second.run_dir.name)
    assert os.readlink(out / "latest") == second.run_dir.name
    assert _same_weights(first.run_dir, second.run_dir)
    assert _history(first.run_dir) == _history(second.run_dir)
    assert _without_run_name(first.report) == _without_run_name(second.report)

    # Interrupt a third run during epoch 2, then resume it from the command line.
    argv = ["--data_dir", str(fma_dir), "--epochs", "2", "--batch_size", "4", "--seed", "7", "--device", "cpu",
            "--cache_dir", str(cache_dir), "--output_dir", str(out), "-q"]
    with interrupted_in_epoch(2):
        assert script_main("train", argv) == 130
    interrupted = out / os.readlink(out / "latest")
    assert [row["epoch"] for row in _history(interrupted)] == ["1"]
    assert not (interrupted / "classification_report.txt").exists()

    assert script_main("train", ["--resume", "--output-dir", str(out), "-q"]) == 0
    assert _same_weights(first.run_dir, interrupted)
    assert _history(first.run_dir) == _history(interrupted)
    resumed_report = (interrupted / "classification_report.txt").read_text()
    assert _without_run_name(resumed_report) == _without_run_name(first.report)

    capsys.readouterr()
    assert script_main("train", ["--resume", str(interrupted), "-q"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "has finished (2 epochs)" in err


def test_training_reads_the_cache_and_never_a_stale_entry(fma_dir, cache_dir, tmp_path, capsys):
    # Copy the fixture (file dates kept, so the cache stands for the copies) and spoil one cached
    # track's audio: unchanged tracks come from the cache, the replaced one is decoded again.
    import shutil

    data = tmp_path / "copy" / "fma_small"
    shutil.copytree(fma_dir.parent, tmp_path / "copy")
    (data / "000" / "000002.mp3").write_bytes(b"no longer audio")
    argv = ["--data_dir", str(data), "--epochs", "1", "--batch_size", "8", "--cache_dir", str(cache_dir),
            "--output_dir", str(tmp_path / "out"), "-q", "--no-augment"]
    assert script_main("train", argv) == 0
    err = capsys.readouterr().err
    assert "000002.mp3" in err  # replaced since it was cached: decoded, fails, skipped (never its old MFCC)
    assert "1 cached MFCC(s) in" in err and "no longer match their files" in err  # and the user is told
    assert f"{BROKEN_KEY}.mp3" in err  # not in the cache: decoded on the fly, fails, skipped
    decoded = set(re.findall(r"(\d{6}\.mp3)", err))
    assert decoded == {"000002.mp3", f"{BROKEN_KEY}.mp3"}  # every other track came from the cache
    run = resolve_model_path(tmp_path / "out" / "latest").parent
    params = json.loads((run / "params.json").read_text())
    assert params["feature_source"]["cache_dir"] == str(cache_dir)
    assert params["feature_source"]["cached_fraction"] == pytest.approx((len(LAYOUT) - 2) / len(LAYOUT), abs=1e-3)
    assert params["num_workers"] >= 1  # two files need decoding, so a worker decodes them


def test_wrong_data_dir_is_one_line_and_exit_2(tmp_path, capsys):
    missing = tmp_path / "nowhere" / "fma_small"
    code = script_main("train", ["--data_dir", str(missing), "--output_dir", str(tmp_path / "out"), "--epochs", "1"])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("train.py: error:") and str(tmp_path / "nowhere") in err
    assert not (tmp_path / "out").exists()


def test_latest_falls_back_to_a_text_file_without_symlinks(tmp_path, monkeypatch):
    from melodex.training.runs import new_run_dir, point_latest

    def no_symlinks(*args, **kwargs):
        raise OSError("symlinks are not supported here")

    monkeypatch.setattr(os, "symlink", no_symlinks)
    now = datetime(2026, 1, 2, 3, 4, 5)
    run = new_run_dir(tmp_path / "out", now=now)
    assert run.name == "2026-01-02_03-04-05"
    (run / "model_weights.pth").write_bytes(b"weights")
    assert point_latest(run) == tmp_path / "out" / "latest.txt"
    assert (tmp_path / "out" / "latest.txt").read_text().strip() == run.name
    assert resolve_model_path(tmp_path / "out" / "latest") == run / "model_weights.pth"
    assert new_run_dir(tmp_path / "out", now=now).name == "2026-01-02_03-04-05_2"  # the name was taken


def test_resume_without_a_run_is_a_clear_error(tmp_path, capsys):
    assert script_main("train", ["--resume", "--output_dir", str(tmp_path / "none")]) == 2
    err = capsys.readouterr().err
    assert "no such run directory" in err and str(tmp_path / "none" / "latest") in err


def test_patience_stops_early_and_keeps_the_best_epoch(fma_dir, cache_dir, tmp_path, monkeypatch):
    from melodex.training.trainer import Trainer

    real_evaluate = Trainer.evaluate

    def flat_validation(self, split):
        if split == "validation":  # validation never improves after epoch 1
            return 1.0, 0.5, [], []
        return real_evaluate(self, split)

    monkeypatch.setattr(Trainer, "evaluate", flat_validation)
    result = train(TrainConfig(data_dir=fma_dir, epochs=5, batch_size=8, patience=2, device="cpu",
                               cache_dir=cache_dir, output_dir=tmp_path / "out", progress=False))
    assert result.stopped_early and result.epochs_run == 3 and result.best_epoch == 1
    assert [row["epoch"] for row in _history(result.run_dir)] == ["1", "2", "3"]
    assert torch.load(result.weights_path, weights_only=True)["metadata"]["epoch"] == 1
    params = json.loads((result.run_dir / "params.json").read_text())
    assert params["result"]["stopped_early"] is True and params["result"]["best_epoch"] == 1
    assert "epoch 1 of 3" in result.report


def test_run_stopped_in_its_first_epoch_resumes_from_the_start(fma_dir, cache_dir, tmp_path, monkeypatch):
    from melodex.training.trainer import Trainer

    out = tmp_path / "out"
    argv = ["--data_dir", str(fma_dir), "--epochs", "1", "--batch_size", "8", "--seed", "3",
            "--cache_dir", str(cache_dir), "--output_dir", str(out), "-q"]
    real_epoch = Trainer._train_epoch

    def interrupt(self, epoch):
        raise KeyboardInterrupt

    monkeypatch.setattr(Trainer, "_train_epoch", interrupt)
    assert script_main("train", argv) == 130
    stopped = out / os.readlink(out / "latest")
    assert (stopped / "params.json").is_file() and not (stopped / "train_state.pth").exists()
    monkeypatch.setattr(Trainer, "_train_epoch", real_epoch)

    assert script_main("train", ["--resume", str(stopped), "-q"]) == 0
    assert script_main("train", argv) == 0  # the same run, never interrupted
    straight = out / os.readlink(out / "latest")
    assert straight != stopped and _same_weights(stopped, straight)
    assert _history(stopped) == _history(straight)
