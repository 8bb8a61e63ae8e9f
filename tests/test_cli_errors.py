"""Errors a new user meets, through the real command: each is exactly one line on stderr and exit 2.

Every test asserts the exit status and the whole error line, as the user sees it; none may
be a traceback, nor a line per input line.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from melodex.cli import main
from melodex.errors import DeviceError
from melodex.library.store import LibraryStore, TrackRecord
from melodex.util.device import resolve_device
from tests._helpers_store import jsonl_line, synthetic_store, write_jsonl

DEVICE_COMMANDS = {  # the least each command needs before --device is read
    "infer": [], "index": [], "similar": ["x"], "train": [], "demo": [],
}


def one_error_line(capsys) -> str:
    """The single line on stderr (asserting there is exactly one, and nothing on stdout)."""
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    assert "Traceback" not in captured.err and captured.out == ""
    return lines[0]


# ------------------------------------------------------------------------------ options
@pytest.mark.parametrize("command", sorted(DEVICE_COMMANDS))
@pytest.mark.parametrize("device", ["mps", "meta", "gpu", "cuda:x"])
def test_a_device_melodex_does_not_run_on_is_one_line_listing_what_it_accepts(command, device, capsys):
    assert main([command, *DEVICE_COMMANDS[command], "--device", device]) == 2
    assert one_error_line(capsys) == (
        f"melodex {command}: error: argument --device: '{device}' is not a device Melodex runs on; "
        f"choose from auto, cpu, cuda or cuda:N (see 'melodex {command} --help')")


@pytest.mark.parametrize("command", ["infer", "index", "train"])
@pytest.mark.parametrize(("flag", "value", "why"), [
    ("--batch-size", "0", "must be at least 1, not 0"),
    ("--batch_size", "-3", "must be at least 1, not -3"),
    ("--num-workers", "-1", "must be 0 or more, not -1"),
    ("--num-workers", "two", "must be a whole number, not 'two'"),
])
def test_batch_size_and_workers_are_checked_for_every_command(command, flag, value, why, capsys):
    assert main([command, flag, value]) == 2
    name = "--batch-size/--batch_size" if "batch" in flag else "--num-workers/--num_workers"
    assert one_error_line(capsys) == f"melodex {command}: error: argument {name}: {why} (see 'melodex {command} --help')"


def test_the_python_api_refuses_the_same_devices():
    for name in ("mps", "meta", "gpu"):
        with pytest.raises(DeviceError, match=f"^--device {name}: not a device Melodex runs on; "
                                              "choose from auto, cpu, cuda or cuda:N$"):
            resolve_device(name)
    assert resolve_device("CPU") == torch.device("cpu")


def test_cuda_on_a_machine_without_one_fails_before_the_model_is_read(tiny_checkpoint, make_audio, monkeypatch,
                                                                      capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    clip = make_audio("a.wav", seconds=1.0)
    assert main(["infer", "--model", str(tiny_checkpoint), "--audio", str(clip), "--device", "cuda"]) == 2
    assert one_error_line(capsys) == \
        "melodex infer: error: --device cuda was asked for, but torch sees no CUDA GPU on this machine"


def test_a_gpu_number_beyond_the_machines_gpus(tiny_checkpoint, make_audio, monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    clip = make_audio("a.wav", seconds=1.0)
    assert main(["infer", "--model", str(tiny_checkpoint), "--audio", str(clip), "--device", "cuda:3"]) == 2
    assert one_error_line(capsys) == \
        "melodex infer: error: --device cuda:3: this machine has 1 CUDA GPU(s), cuda:0 to cuda:0"


def test_demo_with_cuda_on_a_cpu_machine_fails_at_once(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    data = tmp_path / "demo_data"
    assert main(["demo", "--data", str(data), "--out", str(tmp_path / "out"), "--device", "cuda"]) == 2
    assert one_error_line(capsys) == \
        "melodex demo: error: --device cuda was asked for, but torch sees no CUDA GPU on this machine"
    assert not data.exists() and not (tmp_path / "out").exists()  # no corpus was generated first


# -------------------------------------------------------------------------------- --model
@pytest.fixture
def run_folder(tiny_checkpoint, tmp_path) -> Path:
    """training_outputs/<run>/ with weights and params.json, and training_outputs/latest -> it."""
    runs = tmp_path / "training_outputs"
    run = runs / "2024-01-01_00-00-00"
    run.mkdir(parents=True)
    shutil.copyfile(tiny_checkpoint, run / "model_weights.pth")
    (run / "params.json").write_text(json.dumps({"labels": ["Folk", "Pop", "Rock"], "epochs": 1}, indent=2))
    os.symlink(run.name, runs / "latest")
    return run


@pytest.mark.parametrize(("target", "reason"), [
    ("run/params.json", "a JSON file, not a model checkpoint; did you mean {run}?"),
    ("notes.txt", "a text file, not a model checkpoint; give a .pth file or a run folder"),
    ("empty.pth", "an empty file, not a model checkpoint"),
    ("training_outputs", "directory holds no model_weights.pth; did you mean {runs}/latest?"),
])
def test_model_pointing_at_the_wrong_thing(target, reason, run_folder, make_audio, tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("my model is the one from tuesday\n")
    (tmp_path / "empty.pth").write_bytes(b"")
    path = run_folder if target.startswith("run/") else tmp_path
    path = path / target.removeprefix("run/")
    clip = make_audio("a.wav", seconds=1.0)
    assert main(["infer", "--model", str(path), "--audio", str(clip)]) == 2
    expected = reason.format(run=run_folder, runs=run_folder.parent)
    assert one_error_line(capsys) == f"melodex infer: error: {path}: {expected}"


def test_a_folder_of_runs_without_latest_suggests_the_newest_run(run_folder, make_audio, capsys):
    (run_folder.parent / "latest").unlink()
    clip = make_audio("a.wav", seconds=1.0)
    assert main(["infer", "--model", str(run_folder.parent), "--audio", str(clip)]) == 2
    assert one_error_line(capsys) == (f"melodex infer: error: {run_folder.parent}: directory holds no "
                                      f"model_weights.pth; did you mean {run_folder}?")


# ------------------------------------------------------------------------ index --from-jsonl
NOT_JSONL = "not an inference JSONL (one JSON result per line); write one with 'melodex infer --format jsonl'"


def _results(tmp_path: Path, n: int = 300) -> list[dict]:
    rng = np.random.default_rng(0)
    return [jsonl_line(str(tmp_path / f"s{i}.mp3"), rng.random(16), {"Folk": 0.6, "Pop": 0.3, "Rock": 0.1})
            for i in range(n)]


@pytest.mark.parametrize(("name", "why"), [
    ("results.csv", f"a CSV/text table, {NOT_JSONL}"),
    ("results.json", f"a JSON document, {NOT_JSONL}"),
    ("no-embeddings.jsonl", ("results without embeddings (written with --no-embeddings); run 'melodex infer "
                             "--format jsonl' without --no-embeddings, or index the audio with "
                             "'melodex index --audio ... --model ...'")),
    ("notes.txt", f"line 1 is not a JSON result, so this is {NOT_JSONL}"),
])
def test_index_from_something_that_is_not_an_inference_jsonl(name, why, tmp_path, capsys):
    results = _results(tmp_path)
    pd.DataFrame([{"audio_file": r["audio_file"], "top": "Folk"} for r in results]).to_csv(tmp_path / "results.csv")
    (tmp_path / "results.json").write_text(json.dumps({"results": results}, indent=2))
    write_jsonl(tmp_path / "no-embeddings.jsonl",
                [{"audio_file": "gone.mp3", "error": "no such file"}]
                + [{k: v for k, v in r.items() if k != "embedding"} for r in results])
    (tmp_path / "notes.txt").write_text("these are the songs I like\n" * 100)
    store = tmp_path / "library"
    assert main(["index", "--store", str(store), "--from-jsonl", str(tmp_path / name)]) == 2
    assert one_error_line(capsys) == f"melodex index: error: {tmp_path / name}: {why}"
    assert not store.exists()


# ------------------------------------------------------------------------------------ map
@pytest.fixture
def library(tmp_path) -> Path:
    synthetic_store(tmp_path / "library", np.random.default_rng(0), n_per=5)
    return tmp_path / "library"


@pytest.mark.parametrize("figure", ["x.jpg", "map", "map.PNG.bak"])
def test_map_refuses_a_figure_format_before_writing_anything(figure, library, tmp_path, capsys):
    page = tmp_path / "page.html"
    assert main(["map", "--store", str(library), "--out", str(page), "--png", str(tmp_path / figure)]) == 2
    assert one_error_line(capsys) == \
        f"melodex map: error: {tmp_path / figure}: --png must end in .png, .svg or .pdf (or give --no-png)"
    assert not page.exists() and LibraryStore(library).coordinates() is None  # nothing fitted or written


def test_map_help_lists_the_formats_the_figure_writer_takes(capsys):
    from melodex.analysis.map_page import STATIC_FORMATS

    assert main(["map", "--help"]) == 0
    help_text = " ".join(capsys.readouterr().out.split())
    assert "static figure, .png, .svg or .pdf by extension" in help_text
    assert sorted(STATIC_FORMATS) == sorted([".png", ".svg", ".pdf"])


@pytest.mark.parametrize(("flag", "example"), [("--out", "map.html"), ("--png", "map.png")])
def test_map_output_that_is_a_folder(flag, example, library, tmp_path, capsys):
    folder = tmp_path / "maps"
    for given in (f"{folder}/", str(tmp_path)):  # a trailing slash, or a folder that exists
        assert main(["map", "--store", str(library), flag, given]) == 2
        assert one_error_line(capsys) == (f"melodex map: error: {given}: {flag} is a folder; give a file name, "
                                          f"such as {Path(given) / example}")
    assert not folder.exists()


# ------------------------------------------------------------------- similar, evolution, --store
@pytest.fixture
def fma_library(tmp_path) -> Path:
    """Tracks with FMA's zero-padded ids (000002, 000005, ...) and artists with dates."""
    rng = np.random.default_rng(1)
    records = [TrackRecord(f"{i:06d}", f"/music/{i:06d}.mp3", rng.random(16).astype(np.float32),
                           {"Folk": 0.5, "Pop": 0.5}, title=f"Song {i}", artist=artist,
                           date=f"{2000 + i}-01-01", source="manifest")
               for i, artist in zip((2, 5, 9, 12, 20, 33), ["Drift Machine", "Drifters", "Nina Blue"] * 2)]
    LibraryStore(tmp_path / "fma").add(records)
    return tmp_path / "fma"


def test_similar_takes_an_fma_id_without_its_zeros(fma_library, capsys):
    assert main(["similar", "000002", "--store", str(fma_library), "--json"]) == 0
    padded = json.loads(capsys.readouterr().out)["neighbours"]
    assert main(["similar", "2", "--store", str(fma_library), "--json"]) == 0
    unpadded = json.loads(capsys.readouterr().out)["neighbours"]
    assert unpadded == padded and len(padded) == 5 and "000002" not in [n["track_id"] for n in padded]


def test_similar_reports_an_id_that_is_not_there(fma_library, capsys):
    assert main(["similar", "7", "--store", str(fma_library)]) == 2
    assert one_error_line(capsys) == \
        f"melodex similar: error: 7: not a track_id or path in the store at {fma_library}, nor an audio file"


def test_evolution_suggests_the_closest_artist_names(fma_library, capsys):
    assert main(["evolution", "--artist", "Drift", "--store", str(fma_library)]) == 2
    assert one_error_line(capsys) == (f"melodex evolution: error: no artist 'Drift' in the store at {fma_library}; "
                                      "did you mean 'Drifters', 'Drift Machine'?")
    assert main(["evolution", "--artist", "Zzyzx", "--store", str(fma_library)]) == 2
    assert one_error_line(capsys) == f"melodex evolution: error: no artist 'Zzyzx' in the store at {fma_library}"


STORE_READERS = {"map": [], "similar": ["000002"], "evolution": ["--all"], "serve": ["--port", "0"]}


@pytest.mark.parametrize("command", sorted(STORE_READERS))
def test_a_mistyped_store_path_is_the_same_message_everywhere(command, fma_library, tmp_path, capsys):
    typo = tmp_path / "fmaa"
    assert main([command, *STORE_READERS[command], "--store", str(typo)]) == 2
    assert one_error_line(capsys) == \
        f"melodex {command}: error: {typo}: no library store here; create one with 'melodex index'"
    assert main([command, *STORE_READERS[command], "--store", str(tmp_path)]) == 2  # the folder above a store
    assert one_error_line(capsys) == \
        f"melodex {command}: error: {tmp_path}: no library store here; did you mean --store {fma_library}?"
    assert not typo.exists()


def test_the_default_store_falls_back_to_the_demos(fma_library, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["similar", "2"]) == 2  # neither melodex_outputs/library nor demo_outputs/library
    assert one_error_line(capsys) == ("melodex similar: error: melodex_outputs/library: no library store here; "
                                      "create one with 'melodex index'")
    (tmp_path / "demo_outputs").mkdir()
    fma_library.rename(tmp_path / "demo_outputs" / "library")
    assert main(["similar", "2", "-k", "1"]) == 0
    captured = capsys.readouterr()
    assert "000" in captured.out.splitlines()[1]
    assert captured.err == "using the demo's library store at demo_outputs/library (--store picks another)\n"
