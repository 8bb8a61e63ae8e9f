"""Self-supervised training through the real command: ``melodex train --objective contrastive --audio DIR``.

An unlabelled folder of short clips (no label folders, no metadata) trains a headless model into
the usual run directory; a run killed with SIGKILL resumes to the same weights as an uninterrupted
one; ``--init-from`` starts supervised training from it; ``melodex demo --unlabeled`` runs the
main job without labels.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from _helpers_trainer import make_fma_fixture
from conftest import ROOT, signal_when, tone

from melodex.audio.encode import write_audio
from melodex.cli import main
from melodex.model.checkpoint import load_checkpoint
from melodex.training.augment import AugmentConfig

ARTISTS = ("Ana", "Bo", "Cy", "Di")
N_FILES = 16
RUN_FILES = {"model_weights.pth", "params.json", "history.csv", "train_state.pth", "retrieval_report.txt"}


@pytest.fixture(scope="module")
def unlabeled(tmp_path_factory) -> tuple[Path, Path]:
    """A folder of 16 short clips in nested folders of no meaning, in three formats, and a
    manifest naming each clip's artist (4 artists, each with its own pitch); returns (folder, manifest)."""
    root = tmp_path_factory.mktemp("music")
    rows = ["path,artist,album"]
    for i in range(N_FILES):
        artist = ARTISTS[i % 4]
        path = root / f"disc{i % 3}" / f"{i:02d} take.{('wav', 'flac', 'ogg')[i % 3]}"
        write_audio(path, tone(2.5, 22050, freq=180 * (1 + i % 4) + 7 * i, channels=1, seed=i), 22050)
        rows.append(f"{path},{artist},{artist} album {i % 2}")
    manifest = root.parent / "artists.csv"
    manifest.write_text("\n".join(rows) + "\n")
    return root, manifest


def _args(folder: Path, cache: Path, out: Path, *extra: str) -> list[str]:
    return ["train", "--objective", "contrastive", "--audio", str(folder), "--cache_dir", str(cache),
            "--output_dir", str(out), "--batch_size", "4", "--seed", "3", "--device", "cpu", "--num_workers", "0",
            *extra]


def _runs(out: Path) -> list[Path]:
    return sorted(p for p in out.glob("20*") if p.is_dir())


def _history(run: Path) -> list[dict[str, str]]:
    with open(run / "history.csv", newline="") as handle:
        return [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(handle)]


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return torch.load(run / "model_weights.pth", weights_only=True)["state_dict"]


@pytest.fixture(scope="module")
def contrastive_run(unlabeled, tmp_path_factory) -> Path:
    """One contrastive run (augmented, with the artists' manifest), made once for the module."""
    folder, manifest = unlabeled
    work = tmp_path_factory.mktemp("contrastive")
    assert main([*_args(folder, work / "cache", work / "runs", "--epochs", "2", "--manifest", str(manifest)),
                 "-q"]) == 0
    (run,) = _runs(work / "runs")
    return run


def test_contrastive_run_writes_the_usual_files_and_a_headless_model(contrastive_run):
    run = contrastive_run
    assert {p.name for p in run.iterdir()} == RUN_FILES
    assert os.readlink(run.parent / "latest") == run.name
    params = json.loads((run / "params.json").read_text())
    hyper = params["hyperparameters"]
    assert (hyper["objective"], hyper["loss"], hyper["temperature"]) == ("contrastive", "nt_xent", 0.1)
    assert params["objective"]["projection"] == [512, 512, 128]
    # supervised training's dataset options are not written into a run that never used them
    assert not {"data_dir", "kind", "subset"} & (set(hyper) | set(params["dataset"]))
    assert hyper["audio"] and params["dataset"]["tracks"] == N_FILES
    assert params["labels"] == [] and params["augmentation"]["enabled"] is True
    assert params["augmentation"]["clips"] == params["split_sizes"]["training"] == N_FILES - 2
    settings = AugmentConfig().to_dict()  # contrastive runs keep theirs: no warm-up, prob 0.7
    assert {k: params["augmentation"][k] for k in settings} == settings and settings["clean_epochs"] == 0
    assert params["split_sizes"]["validation"] == 2 and params["result"]["epochs_run"] == 2
    assert [row["epoch"] for row in _history(run)] == ["1", "2"]
    ckpt = load_checkpoint(run)
    assert ckpt.headless and ckpt.labels == [] and ckpt.model_config.embedding_dim == 512
    state = torch.load(run / "train_state.pth", weights_only=True)
    assert set(state["projector"]) == {"0.weight", "0.bias", "2.weight", "2.bias"}  # kept for --resume only
    assert not any(k.startswith(("projector", "head.")) for k in ckpt.state_dict)
    # the validation tracks' artists come from the manifest: the report scores them against mfcc-stats
    report = (run / "retrieval_report.txt").read_text()
    assert "same artist among the 1 nearest: contrastive" in report and "mfcc-stats" in report
    labels = {(s["label"], s["embedding"]) for s in params["result"]["retrieval"]["scores"]}
    assert labels == {(a, b) for a in ("artist", "album") for b in ("contrastive", "mfcc-stats")}


def test_without_artist_metadata_the_report_says_what_it_needs(unlabeled, tmp_path, capsys):
    folder, _ = unlabeled
    assert main([*_args(folder, tmp_path / "cache", tmp_path / "runs", "--epochs", "1", "--no-augment"), "-q"]) == 0
    (run,) = _runs(tmp_path / "runs")
    report = (run / "retrieval_report.txt").read_text()
    assert "needs artist metadata" in report and "--manifest" in report
    assert json.loads((run / "params.json").read_text())["result"]["retrieval"]["artists_known"] == 0


def test_contrastive_run_killed_then_resumed_equals_an_uninterrupted_run(unlabeled, tmp_path):
    folder, _ = unlabeled
    cache, killed_root, clean_root = tmp_path / "cache", tmp_path / "killed", tmp_path / "clean"
    common = ["--epochs", "3", "--no-augment", "-q"]
    assert main(_args(folder, cache, clean_root, *common)) == 0  # also fills the cache for the killed run

    def an_epoch_done() -> bool:
        runs = _runs(killed_root)
        return bool(runs) and (runs[0] / "train_state.pth").is_file()  # written after epoch 1's history line

    signal_when(["-m", "melodex", *_args(folder, cache, killed_root, *common)], an_epoch_done, signal.SIGKILL)
    (killed,) = _runs(killed_root)
    assert not (killed / "retrieval_report.txt").exists()  # it had not finished
    env = dict(os.environ, PYTHONPATH=str(ROOT), OPENBLAS_NUM_THREADS="1")
    # --resume alone: the run's params.json says it is contrastive
    resumed = subprocess.run([sys.executable, "-m", "melodex", "train", "--resume", str(killed), "--num_workers", "0"],
                             env=env, capture_output=True, text=True, timeout=300, check=False)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"resuming run {killed.name} after epoch" in resumed.stderr
    (clean,) = _runs(clean_root)
    assert [row["epoch"] for row in _history(killed)] == ["1", "2", "3"]  # each epoch once
    assert _history(killed) == _history(clean)
    wa, wb = _weights(killed), _weights(clean)
    assert wa.keys() == wb.keys() and all(torch.allclose(wa[k], wb[k], atol=1e-6) for k in wa)
    assert (killed / "retrieval_report.txt").is_file()
    again = subprocess.run([sys.executable, "-m", "melodex", "train", "--resume", str(killed)], env=env,
                           capture_output=True, text=True, timeout=300, check=False)
    assert again.returncode == 2 and "the run has finished (3 epochs)" in again.stderr


def test_supervised_training_starts_from_a_contrastive_run(contrastive_run, tmp_path, capsys):
    data = make_fma_fixture(tmp_path / "fma")
    args = ["train", "--data_dir", str(data), "--cache_dir", str(tmp_path / "cache"), "--epochs", "1",
            "--batch_size", "4", "--no-augment", "--num_workers", "0", "--output_dir", str(tmp_path / "runs"),
            "--lr", "1e-12", "--init-from", str(contrastive_run)]
    assert main(args) == 0
    err = capsys.readouterr().err
    assert f"starting from the backbone and embedding of {contrastive_run / 'model_weights.pth'}" in err
    (run,) = _runs(tmp_path / "runs")
    params = json.loads((run / "params.json").read_text())
    assert params["hyperparameters"]["init_from"] == str(contrastive_run)
    ckpt, source = load_checkpoint(run), load_checkpoint(contrastive_run)
    assert ckpt.labels == ["Folk", "Pop", "Rock"] and not ckpt.headless
    for name in ("features.0.weight", "features.12.weight", "embedding.0.weight", "feature_mean", "feature_std"):
        assert torch.allclose(ckpt.state_dict[name], source.state_dict[name], atol=1e-6), name  # lr 1e-12: unmoved
    # a file that is no checkpoint: one line, exit 2, no run
    bad = tmp_path / "notes.txt"
    bad.write_text("not a model\n")
    assert main(args[:-1] + [str(bad), "--output_dir", str(tmp_path / "bad"), "-q"]) == 2
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]  # (after the dataset's own warning about its broken file)
    assert str(bad) in last and "not a model checkpoint" in last and not (tmp_path / "bad").exists()


def test_contrastive_needs_audio_and_supervised_refuses_it(unlabeled, tmp_path, capsys):
    assert main(["train", "--objective", "contrastive", "--output_dir", str(tmp_path / "a")]) == 2
    assert "--objective contrastive needs --audio DIR" in capsys.readouterr().err
    assert main(["train", "--audio", str(unlabeled[0]), "--output_dir", str(tmp_path / "b")]) == 2
    assert "--audio is for --objective contrastive" in capsys.readouterr().err
    assert main(["train", "--objective", "contrastive", "--audio", str(tmp_path / "nowhere")]) == 2
    assert "nowhere: no such file or directory" in capsys.readouterr().err


def test_demo_unlabeled_trains_without_labels_and_prints_retrieval_beside_the_supervised_demo(small_demo, tmp_path,
                                                                                              capsys):
    import shutil

    from conftest import SMALL_DEMO_ARGS

    status, data, out = small_demo
    assert status == 0
    # its own copy of the corpus and cache (mtimes kept, so nothing is decoded again), the supervised store beside
    corpus = Path(shutil.copytree(data, tmp_path / "demo_data", symlinks=True))
    mine = tmp_path / "demo_outputs"
    mine.mkdir()
    (mine / "library").symlink_to(out / "library", target_is_directory=True)
    at = SMALL_DEMO_ARGS.index("--epochs")
    args = SMALL_DEMO_ARGS[:at] + SMALL_DEMO_ARGS[at + 2:]  # the same corpus; fewer epochs below
    assert main(["demo", "--unlabeled", "--data", str(corpus), "--out", str(mine), *args, "--epochs", "2"]) == 0
    captured = capsys.readouterr()
    printed = captured.out + captured.err
    assert "Melodex demo without labels finished" in printed
    header = next(line for line in printed.splitlines() if "contrastive" in line and "supervised" in line)
    assert header.split() == ["contrastive", "supervised", "mfcc-stats", "chance"]
    for label in ("same artist", "same album", "same style"):
        row = next(line for line in printed.splitlines() if line.strip().startswith(label)).split()
        assert len(row) == 6 and all(0 <= float(v) <= 1 for v in row[2:]), row  # every figure, the supervised too
    run = (mine / "unlabeled" / "training_outputs" / "latest").resolve()
    params = json.loads((run / "params.json").read_text())
    assert params["hyperparameters"]["objective"] == "contrastive" and params["labels"] == []
    assert "same artist among the" in (run / "retrieval_report.txt").read_text()  # FMA metadata names the artists
    report = json.loads((mine / "unlabeled" / "retrieval.json").read_text())
    assert {s["embedding"] for s in report["scores"]} == {"store", "mfcc-stats"}
    assert (mine / "unlabeled" / "map.html").is_file() and (mine / "unlabeled" / "evolution").is_dir()


def test_masked_and_mixed_views_train_and_are_recorded_and_old_runs_resume_without_them(unlabeled, tmp_path, capsys):
    from melodex.training.config import TrainConfig, settings_for_resume

    folder, _ = unlabeled
    args = _args(folder, tmp_path / "cache", tmp_path / "runs", "--epochs", "1", "--no-augment", "-q")
    assert main([*args, "--spec-mask", "0.2", "--mix", "0.5"]) == 0
    (run,) = _runs(tmp_path / "runs")
    params = json.loads((run / "params.json").read_text())
    assert (params["hyperparameters"]["spec_mask"], params["hyperparameters"]["mix"]) == (0.2, 0.5)
    assert (params["objective"]["spec_mask"], params["objective"]["mix"]) == (0.2, 0.5)
    for flag, value, message in (("--spec-mask", "0.5", "--spec-mask must be at least 0 and below 0.5"),
                                 ("--mix", "1.5", "--mix must be between 0 and 1")):
        assert main([*args, flag, value]) == 2
        assert message in capsys.readouterr().err
    old = {"hyperparameters": {"objective": "contrastive", "view_seconds": 5.0}}  # saved before the flags
    resumed = settings_for_resume(TrainConfig(spec_mask=0.3, mix=1.0), old)
    assert (resumed.spec_mask, resumed.mix) == (0.0, 0.0)


def test_train_flags_default_to_the_settings_train_config_defines():
    """One definition of each default: `melodex train` with no flags asks for TrainConfig's own defaults."""
    import dataclasses

    from melodex.cli import get_parser
    from melodex.training.config import TrainConfig

    args = vars(get_parser().parse_args(["train"]))
    fields = {f.name: f.default for f in dataclasses.fields(TrainConfig) if f.name in args}
    assert len(fields) > 20
    assert {name: (tuple(args[name]) if name == "audio" else args[name]) for name in fields} == fields


def test_contrastive_epochs_default_grows_on_a_small_collection():
    from melodex.constants import CONTRASTIVE_MAX_EPOCHS, DEFAULT_EPOCHS
    from melodex.training.config import epochs_for

    assert epochs_for("supervised", 10) == DEFAULT_EPOCHS
    assert epochs_for("contrastive", 119) == 295  # the 132-track real-music corpus, 10% held out
    assert epochs_for("contrastive", 100_000) == DEFAULT_EPOCHS
    assert epochs_for("contrastive", 3) == CONTRASTIVE_MAX_EPOCHS


def test_contrastive_run_without_epochs_trains_the_default_for_its_size(unlabeled, tmp_path, monkeypatch):
    from melodex.training import config

    monkeypatch.setattr(config, "DEFAULT_EPOCHS", 1)  # so the rule's answer, not the floor, decides
    monkeypatch.setattr(config, "CONTRASTIVE_PAIRS", 2 * (N_FILES - 2))  # 2 epochs of the training tracks
    folder, _ = unlabeled
    assert main([*_args(folder, tmp_path / "cache", tmp_path / "runs", "--no-augment"), "-q"]) == 0
    (run,) = _runs(tmp_path / "runs")
    params = json.loads((run / "params.json").read_text())
    assert params["split_sizes"]["training"] == N_FILES - 2
    assert params["hyperparameters"]["epochs"] == 2 and len(_history(run)) == 2
    assert (params["hyperparameters"]["keep"], params["hyperparameters"]["segments"]) == ("last", 8)
